# The two commands: `make demo` and `make test`. Both set everything up first:
# a virtualenv in .venv, torch 2.13.0 (CPU wheel), the core and every plugin (editable),
# the test dependencies.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip

.PHONY: demo test setup browser dist lint specs benchmark figures clean

# The method catalog's browser test drives the system's Chromium through chromedriver.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) requirements-test.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24" "setuptools>=70"
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt --no-build-isolation -e ".[plot]" $(addprefix -e ,$(PLUGINS)) -r requirements-test.txt
	touch $@

setup: $(STAMP)

# The claims, and the catalog beside them with every method's conformance results (a failed
# check is shown on its method's page, not hidden: the demo goes on).
demo: $(STAMP)
	$(BIN)/gradhub list
	mkdir -p build
	$(BIN)/gradhub check --json > build/conformance.json || echo "some conformance checks failed: see the catalog"
	$(BIN)/gradhub demo --report demo-report --check build/conformance.json

test: $(STAMP) browser
	$(BIN)/python -m pytest

# Chromium and chromedriver from the system's packages (Debian/Ubuntu), where missing.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing chromium and chromium-driver (apt) for the catalog's browser test"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "could not install chromium; tests/test_site_browser.py will fail: install chromium and chromedriver"; \
	fi

# Wheels and sdists of the core and every plugin, twine-checked, with their dependencies'
# wheels (torch excepted) and a PEP 503 index in dist/simple (see tools/dist.py).
dist: $(STAMP)
	$(BIN)/python tools/dist.py --out dist

lint: $(STAMP)
	$(BIN)/ruff check gradhub plugins benchmarks tests tools
	$(BIN)/ruff format --check gradhub plugins benchmarks tests tools

specs: $(STAMP)
	$(BIN)/python -m gradhub.generate specs

# Each plugin's claim checks, drawn into plugins/<slug>/demo/ (index.md + PNGs) for its README.
figures: $(STAMP)
	for dir in $(PLUGINS); do \
		slug=$$(basename $$dir); \
		names=$$($(BIN)/python -c "from gradhub.testing import distribution_methods as d; print(*d('gradhub-$$slug'))"); \
		$(BIN)/gradhub demo $$names --quiet --no-site --report $${dir}demo > /dev/null && rm $${dir}demo/results.json || exit 1; \
	done

benchmark: $(STAMP)
	$(BIN)/python benchmarks/optimizers.py

clean:
	rm -rf $(VENV) build dist *.egg-info plugins/*/*.egg-info
