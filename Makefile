# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

# The real programs the test suite drives (clients, and the redis-server the
# cluster tests start), as COMMAND:DEBIAN-PACKAGES
# (packages joined by commas).  `make test` installs the missing ones.
TEST_PROGRAMS := telnet:telnet nc:netcat-openbsd plink:putty-tools cc:gcc,libc6-dev \
                 chromium:chromium chromedriver:chromium-driver irssi:irssi weechat-headless:weechat-headless \
                 redis-server:redis-server openssl:openssl socat:socat
# Headers the benchmarks' C load generator is compiled with (its TLS
# clients link OpenSSL), as HEADER:DEBIAN-PACKAGES, under /usr/include.
TEST_HEADERS := openssl/ssl.h:libssl-dev

.PHONY: run test test-programs clean

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

# Debian's programs, installed with apt when missing (as root); otherwise one
# line naming the packages to install.
test-programs:
	@missing=""; \
	for entry in $(TEST_PROGRAMS); do \
	    command -v "$${entry%%:*}" >/dev/null 2>&1 || missing="$$missing $$(echo "$${entry#*:}" | tr , ' ')"; \
	done; \
	for entry in $(TEST_HEADERS); do \
	    [ -e "/usr/include/$${entry%%:*}" ] || missing="$$missing $$(echo "$${entry#*:}" | tr , ' ')"; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" -ne 0 ]; then \
	        echo "make test: the tests drive real client programs; install them first: sudo apt-get install$$missing" >&2; \
	        exit 1; \
	    fi; \
	    echo "make test: installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	fi

# Runs from the checkout (PYTHONPATH=.), so edits take effect without reinstalling.
run: $(VENV)/.run-stamp
	PYTHONPATH=. $(BIN)/twistd --pidfile= -n chatd --port 8088 $(ARGS)

# Types and layers first (mypy with mypy-zope, and import-linter's contracts,
# both configured in setup.cfg): quick checks that fail before the slower
# suite starts.
test: $(VENV)/.test-stamp test-programs
	$(BIN)/mypy chatd
	$(BIN)/lint-imports
	PYTHONPATH=. $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache
