# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test demo lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# One pip command, torch pinned in it: installing ogb (or anything that depends on torch)
	# before torch would make pip fetch a multi-GB CUDA build.
	$(PY) -m pip install --quiet -c constraints.txt "torch==2.13.0" -e ".[test,ogb,plot,chem,parquet,lint]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(VENV)/bin/graphkit demo

clean:
	rm -rf $(VENV) build *.egg-info
