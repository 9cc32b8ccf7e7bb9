# Two front doors for a fresh machine: `make run` (set up, make the demo data, run) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO ?= demo_data

.PHONY: setup run demo-data test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "LINOP needs Python 3.11 or newer (found " + sys.version.split()[0] + "): set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@# Qt's X11 plugin needs system libraries a fresh Debian/Ubuntu lacks (found with ldd on the plugin):
	@# installed here when root with apt-get, else the one command that installs them is printed.
	-@$(PY) -m linop_gui.preflight --install
	@touch $@

# The app on the phantom demo datasets (made once, cached under ~/.cache/linop/demo).
run: setup
	$(VENV)/bin/linop-gui --demo

# Without a screen: write the demo datasets and print what is in them.
demo-data: setup
	$(VENV)/bin/linop-data phantom mammo --out $(DEMO)/mammo --n 4 --seed 0
	$(VENV)/bin/linop-data phantom cxr --out $(DEMO)/cxr --n 12 --seed 0
	$(VENV)/bin/linop-data inspect $(DEMO)/mammo
	$(VENV)/bin/linop-data inspect $(DEMO)/cxr

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: setup
	@QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
