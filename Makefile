# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test clean

# A stamp per kind of install, so `make test` adds the test extras to a venv
# that `make run` made, and neither reinstalls when nothing changed.
$(VENV)/.run-stamp: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet .
	touch $@

$(VENV)/.test-stamp: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet ".[test]"
	touch $@

# Runs from the checkout (PYTHONPATH=.), so edits take effect without reinstalling.
run: $(VENV)/.run-stamp
	PYTHONPATH=. $(BIN)/twistd --pidfile= -n chatd --port 8088 $(ARGS)

test: $(VENV)/.test-stamp
	PYTHONPATH=. $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache
