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
	$(PY) bench/bench_kiosk.py --rounds 5
	$(PY) bench/bench_guards.py
	$(PY) bench/bench_capture.py --seconds 60 --runs 3

clean:
	rm -rf $(VENV) build dist *.egg-info
