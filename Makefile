# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,postgres,report]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/fmduck demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The fast subset: no test marked slow or spark, spread over the cores by xdist.
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow and not spark" -n $(or $(JOBS),auto) $(PYTEST_ARGS)

# ruff (rules in pyproject.toml [tool.ruff]) and the structure check of fmduck/ (tools/structure_check.py)
lint: $(VENV)/.installed-test
	$(BIN)/ruff check fmduck tests tools bench
	$(BIN)/python tools/structure_check.py

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e '.[test,postgres,report,bench]'
	touch $@

# fmduck and its peers side by side in one run: in-process fits (bench/RESULTS.md), then whole
# processes as a user waits for them (bench/PROCESS.md)
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.process $(PROCESS_ARGS)

clean:
	rm -rf $(VENV) fmduck-demo.duckdb .pytest_cache
