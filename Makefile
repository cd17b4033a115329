# motcua-pulse — local stack and tests. See README.md.
#   make up      install what is missing, start every part, print where to look
#   make test    install everything, lint (ruff, mypy) and run every test (unit, integration, browser)
#   make down | make status | make bench | make install

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUPERSET_STAMP := .venv-superset/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: up down status lint test test-unit bench install install-system install-superset clean-state

up: install
	@$(PY) -m deploy.local.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m deploy.local.stack down; else echo "nothing installed, nothing running"; fi

status:
	@$(PY) -m deploy.local.stack status

# ruff and mypy, configured in pyproject.toml
lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

test: install lint
	@mkdir -p artifacts
	$(PY) -m pytest -ra -p no:cacheprovider --durations=30 $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest -ra -p no:cacheprovider -m "not integration and not browser and not slow" $(PYTEST_ARGS)

# A shortened province-year (bench/bench_year.py: two months of a mid-size province, ~0.4 M
# events, a few minutes). The full year: $(PY) bench/bench_year.py (defaults: 12 months,
# scale 15, ~16 M events). The other bench/ scripts run one by one: $(PY) bench/bench_<name>.py
bench: install
	$(PY) bench/bench_year.py --months 2 --scale 2 --step 100000

install: install-system $(STAMP) install-superset
	@$(PY) -m deploy.local.kafka_broker fetch >/dev/null

# System packages: Java 17 and Maven for the Kafka broker, Prometheus for the metrics test
# (Chromium: deploy/superset/install.sh).
install-system:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3.11-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[test]'
	@touch $(STAMP)

install-superset: $(SUPERSET_STAMP)

# Superset's own venv (its pins conflict with the pipeline's) and Debian's Chromium.
$(SUPERSET_STAMP): deploy/superset/requirements.lock deploy/superset/install.sh deploy/superset/i18n.py deploy/superset/translations/vi/LC_MESSAGES/messages.po
	@PYTHON=$(PYTHON) bash deploy/superset/install.sh
	@touch $(SUPERSET_STAMP)

clean-state: down
	rm -rf .state
