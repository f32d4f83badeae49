# Lockdown: `make demo` runs the bundled demo exam, `make test` runs the test suite,
# `make package` builds the one-folder bundle dist/lockdown, `make package-test` smoke-tests it.
.PHONY: setup demo test lint docs bench package package-test clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/lockdown demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check lockdown lockdown_server tests bench packaging
	$(VENV)/bin/ruff format --check lockdown lockdown_server tests bench packaging
	$(VENV)/bin/mypy

docs: setup
	$(PY) -m lockdown.config.docgen > docs/settings.md

bench: setup
	$(PY) bench/bench_kiosk.py --rounds 5
	$(PY) bench/bench_guards.py
	$(PY) bench/bench_capture.py --seconds 60 --runs 3

package: setup
	PY=$(PY) packaging/build.sh

package-test: setup
	$(PY) -m pytest packaging/tests --durations=0

clean:
	rm -rf $(VENV) build dist *.egg-info
