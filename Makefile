# DAMP for QGIS — everything a new user runs. `make demo` and `make test` install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
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

# The tests also check the classical baselines of the benchmarks, so they install those too.
# ruff (pinned in requirements.txt, rules in pyproject.toml) checks the code first.
test: setup $(BENCH_STAMP)
	@$(PY) -m ruff check --quiet damp_engine damp_qgis tests bench scripts
	@$(PY) -m pytest -q -p no:cacheprovider tests

# Speed and memory: the prompt on a 224-band 1000x1000 cube, streaming restoration, then batch
# restoration on Dask (scenes per hour with 1 and 2 workers).
bench: setup
	@$(PY) bench/bench_prompt.py
	@$(PY) bench/bench_restore.py
	@$(PY) bench/bench_batch.py

clean:
	rm -rf $(VENV) dist build *.egg-info .pytest_cache

# --- QGIS plugin ---------------------------------------------------------------------------
PLUGIN_ZIP := dist/damp_qgis.zip
QGIS_PLUGINS ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins

# The plugin ZIP for Plugins > Install from ZIP: damp_qgis/ with the vendored engine and bundled model.
package:
	@python3 scripts/package_plugin.py zip $(PLUGIN_ZIP)

# Symlink the checkout into the default QGIS profile as damp_qgis and enable it. QGIS's Python
# finds torch and safetensors in the venv through PYTHONPATH.
SITE_PACKAGES = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
install-plugin: setup
	@python3 scripts/package_plugin.py link $(QGIS_PLUGINS)
	@export PYTHONPATH=$(SITE_PACKAGES); qgis_process.bin plugins enable damp_qgis >/dev/null 2>&1 \
	  || qgis_process.bin plugins 2>/dev/null | grep -q '^\* damp_qgis' || { echo "cannot enable damp_qgis"; exit 1; }
	@echo "enabled damp_qgis; start QGIS with torch from the venv:"
	@echo "  PYTHONPATH=$(SITE_PACKAGES) qgis"

screenshot: setup
	@$(PY) scripts/screenshot.py

# --- Quality suite: DAMP vs classical baselines (benchmark-only packages, never shipped) ----
QUALITY_ARGS ?= --crop 128

$(BENCH_STAMP): $(STAMP) requirements-bench.txt constraints.txt
	@$(PIP) -r requirements-bench.txt
	@touch $@

# Options go in QUALITY_ARGS (default: 128-pixel centre crops), e.g. make bench-quality QUALITY_ARGS="--crop 256 --bm4d".
bench-quality: $(BENCH_STAMP)
	@$(PY) -m bench.quality_suite $(QUALITY_ARGS)
