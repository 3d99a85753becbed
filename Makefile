# The two commands: `make run` (install + start everything on this machine) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
WEB := services/console/web
ASSETS := $(WEB)/node_modules/.installed
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test bench proto browser clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(INSTALLED)

# The console's chart library and font, from the npm registry (served by the console, no CDN).
$(ASSETS): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the console's assets (apt-get install npm)"; exit 1; }
	npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error
	touch $(ASSETS)

install: $(INSTALLED) $(ASSETS)

# Debian's Chromium for the console's browser tests (Playwright drives it; it downloads no browser).
browser:
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; }

run: install
	$(VENV)/bin/dti-pulse up $(ARGS)

test: install browser
	DTI_CHROMIUM=$(CHROMIUM) $(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m bench.run $(ARGS)

proto: install
	$(PY) -m dti_pulse.protogen

clean:
	rm -rf $(VENV) build *.egg-info $(WEB)/node_modules
