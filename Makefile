# One command to set up and run the demo, one to set up and run the tests.
PYTHON ?= python3
# A CPU build by default; on a GPU machine install your CUDA build of torch first (it is kept).
TORCH ?= torch==2.13.0

.PHONY: install install-test demo test lint

# What the demo needs: mltune and its dependencies (no Ray, no server extras, no test tools).
install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q "$(TORCH)"
	$(PYTHON) -m pip install -q -e .

# The test extra on top: pytest, ruff, import-linter, Ray, mlflow[auth], psycopg2.
install-test: install
	$(PYTHON) -m pip install -q -e ".[test]"

demo: install
	mlflow run . --env-manager local

test: install-test
	lint-imports  # the layers contract in pyproject.toml: dependencies run one way
	$(PYTHON) -m pytest -q

lint:
	ruff check mltune tests benchmarks
	lint-imports
