# Two commands on a fresh machine:
#   make report   set up .venv, run the workflow on the synthetic trial -> reports/
#   make test     set up .venv, run the test suite and the linters
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: report test clean

$(BIN)/trialstats: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

report: $(BIN)/trialstats
	$(BIN)/trialstats run --config config/config.yaml --out . --cores $(CORES)

test: $(BIN)/trialstats
	$(BIN)/ruff check src tests benchmarks
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint
	$(BIN)/snakefmt --check src/trialstats/workflow
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

clean:
	rm -rf results reports/*.html reports/*.docx .snakemake logs
