# One command to set up and run the demo, one to set up and run the tests.
PYTHON ?= python3
# A CPU build by default; on a GPU machine install your CUDA build of torch first (it is kept).
TORCH ?= torch==2.13.0

.PHONY: install demo test lint

install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q "$(TORCH)"
	$(PYTHON) -m pip install -q -e ".[test]"

demo: install
	mlflow run . --env-manager local

test: install
	lint-imports  # the layers contract in pyproject.toml: dependencies run one way
	$(PYTHON) -m pytest -q

lint:
	ruff check mltune tests benchmarks
	lint-imports
