# The two commands: `make run` (install + start everything on this machine) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
WEB := services/console/web
ASSETS := $(WEB)/node_modules/.installed
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

KAFKA_LIBS := build/kafka/libs
KAFKA := $(KAFKA_LIBS)/.installed

.PHONY: install run test faults bench proto browser tools clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[local,test]'
	touch $(INSTALLED)

# The console's chart library and font, from the npm registry (served by the console, no CDN).
$(ASSETS): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the console's assets (apt-get install npm)"; exit 1; }
	npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error
	touch $(ASSETS)

# Apache Kafka (KRaft) for `up`, the tests and the bench: its jars from Maven Central, the
# version pinned in deploy/kafka/pom.xml (the same as docker-compose.yml's image).
$(KAFKA): deploy/kafka/pom.xml
	@command -v java >/dev/null && command -v mvn >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless maven >/dev/null; }
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies
	touch $(KAFKA)

install: $(INSTALLED) $(ASSETS) $(KAFKA)

# Debian's Chromium for the console's browser tests (Playwright drives it; it downloads no
# browser), kcat, a Kafka client of another lineage, to check the broker speaks Kafka, and
# poppler-utils, to render the PDF report to PNG in its test.
browser:
	@[ -x $(CHROMIUM) ] && command -v kcat >/dev/null && command -v pdftoppm >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-dejavu-core kcat poppler-utils >/dev/null; }

# What the deployment checks run (tests/integration/test_deploy.py): Debian's prometheus
# (promtool) and docker-compose (config only); dclint and Strimzi's resource validators from
# npm; kustomize and kubeconform from the Go module proxy; the Kubernetes JSON schemas from
# PyPI (kubernetes-validate, a test extra).
TOOLS := build/tools
NPM_TOOLS := $(TOOLS)/node_modules/.installed
GO_TOOLS := $(TOOLS)/bin/.installed
$(NPM_TOOLS):
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error \
		dclint@3.1.0 @kubernetes-models/strimzi-kafka-operator@1.0.1
	touch $(NPM_TOOLS)
$(GO_TOOLS):
	@command -v go >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq golang >/dev/null; }
	GOBIN=$(abspath $(TOOLS)/bin) go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0
	GOBIN=$(abspath $(TOOLS)/bin) go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1
	touch $(GO_TOOLS)
tools: $(NPM_TOOLS) $(GO_TOOLS)
	@command -v promtool >/dev/null && command -v docker-compose >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends prometheus docker-compose >/dev/null; }

run: install
	$(VENV)/bin/dti-pulse up $(ARGS)

test: install browser tools
	DTI_CHROMIUM=$(CHROMIUM) DTI_TOOLS=$(abspath $(TOOLS)) $(PY) -m pytest $(PYTEST_ARGS)

# The fault suite alone: `up` hurt on purpose while the bus sends; prints what was lost,
# counted twice and how long it took to recover (make test runs it too, tests/e2e/test_faults.py).
faults: install
	$(PY) -m tests.faults

bench: install
	$(PY) -m bench.run $(ARGS)

proto: install
	$(PY) -m dti_pulse.protogen

clean:
	rm -rf $(VENV) build *.egg-info $(WEB)/node_modules
