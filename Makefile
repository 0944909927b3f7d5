# One command to set up and run the demo, one to set up and run the tests.
PYTHON ?= python3
# A CPU build by default; on a GPU machine install your CUDA build of torch first (it is kept).
TORCH ?= torch==2.13.0

.PHONY: install install-test demo test lint docs docs-serve docs-shots

# What the demo needs: mltune and its dependencies (no Ray, no server extras, no test tools).
install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q "$(TORCH)"
	$(PYTHON) -m pip install -q -e .

# The test extra on top: pytest, ruff, import-linter, Ray, mlflow[auth], psycopg2, the docs builder.
install-test: install
	$(PYTHON) -m pip install -q -e ".[test]"

demo: install
	mlflow run . --env-manager local

test: install-test
	lint-imports  # the layers contract in pyproject.toml: dependencies run one way
	$(GENERATED) --check  # the committed pages' generated sections are what the code makes now
	$(MKDOCS) build --strict  # the manual: a broken link or a missing page fails
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup  # two workers: tests/conftest.py groups them

lint:
	ruff check mltune tests benchmarks docs/gen
	lint-imports

# The manual (docs/, mkdocs.yml). The sections generated from the code (every spec key, the
# catalogs, the CLI and MLproject references, the API...) are rewritten in the pages before
# every build (docs/gen/hooks.py) and committed, so the repository's web view shows them too;
# `make test` refuses a stale one. The site goes to build/site/.
MKDOCS = NO_MKDOCS_2_WARNING=1 PYTHONPATH=$(CURDIR) $(PYTHON) -m mkdocs
GENERATED = PYTHONPATH=$(CURDIR) $(PYTHON) -m docs.gen.generate

docs:  # rewrites the generated sections of the pages (commit them), then builds the site
	$(MKDOCS) build --strict

docs-serve:
	$(MKDOCS) serve

# The screenshots in docs/img/: a short digits search against a throwaway mlflow server on
# 127.0.0.1, captured by headless Chromium (Debian package chromium). Commit what changed.
docs-shots:
	PYTHONPATH=$(CURDIR) $(PYTHON) -m docs.gen.shots
