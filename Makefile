# DAMP for QGIS — everything a new user runs. `make demo` and `make test` install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt
export QT_QPA_PLATFORM ?= offscreen
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test bench bench-quality train package install-plugin screenshot clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml scripts/install-system.sh
	@scripts/install-system.sh
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@$(PIP) -r requirements.txt
	@$(PIP) --no-build-isolation --no-deps -e .
	@touch $@

demo: setup
	@$(PY) -m damp_engine.demo

test: setup
	@$(PY) -m pytest -q -p no:cacheprovider tests

bench: setup
	@$(PY) bench/bench_prompt.py

clean:
	rm -rf $(VENV) dist build *.egg-info .pytest_cache
