# Lockdown: `make demo` runs the bundled demo exam, `make test` runs the test suite.
.PHONY: setup demo test lint docs bench clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/lockdown demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check lockdown lockdown_server tests bench
	$(VENV)/bin/ruff format --check lockdown lockdown_server tests bench
	$(VENV)/bin/mypy

docs: setup
	$(PY) -m lockdown.config.docgen > docs/settings.md

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info
