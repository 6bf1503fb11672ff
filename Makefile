# The two commands a newcomer needs: `make run` (the product) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: install install-dev run test test-fast lint bench freeze

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt -c constraints.txt
	touch $@

install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) -r requirements-dev.txt -c constraints.txt
	touch $@

# The demo runs in development mode; without DEBUG set, the settings run safe (DEBUG off, SECRET_KEY required).
run: export DEBUG ?= 1
run: install
	$(PY) manage.py ensure_database
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py load_demo
	$(PY) manage.py setup_demo_users
	$(PY) manage.py demo_campaigns
	$(PY) manage.py train_model --first-run
	$(PY) manage.py run_stack

test: install-dev
	$(PY) -m pytest

test-fast: install-dev
	$(PY) -m pytest -m "not slow"

lint: install-dev
	$(VENV)/bin/ruff check .

bench: install-dev
	$(PY) bench/ingest.py --json bench/out/ingest.json

freeze:
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
