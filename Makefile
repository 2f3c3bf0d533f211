# make demo: the main job end to end against a local S3 (moto server on 127.0.0.1)
# make test: ruff, then every test but the reliability scenarios (radosgw's where installed)
# make unit: the parts of nxlog_s3/ alone, in seconds
# make scripts: writes s3_write.py and s3_read.py from the package nxlog_s3/ (ARCHITECTURE.md)
# make dist: the wheel (the two scripts alone) and the sdist in dist/, for pip install --target
# make reliability: regenerates docs/RELIABILITY.md; make soak: the same, ten times longer
# make bench: every mode under a real NXLog in one run (bench/nxlog_bench.py; README)
# make nxlog: a real NXLog CE from ../shared/nxlog/ (the tests run under it where it is), and
#   boto3, zstandard and pyarrow for the system Python it embeds, in .nxlog-python/
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The oldest Python the scripts support (NXLog embeds the system one), where this machine has
# it: the end-to-end test then also runs the scripts under it.
PYTHON38 ?= $(shell for p in python3.8 $(HOME)/.pyenv/versions/3.8*/bin/python3.8; do \
                "$$p" -c '' 2>/dev/null && echo "$$p" && break; done)
OLDEST := $(if $(PYTHON38),.venv38/.installed)

# NXLog embeds the system Python: what the scripts need is installed for it, not in the venv.
SHARED ?= ../shared
SYSTEM_PYTHON ?= /usr/bin/python3
NXLOG_PYTHON := .nxlog-python

.PHONY: demo test unit lint scripts dist reliability soak clean nxlog bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.venv38/.installed: pyproject.toml
	$(PYTHON38) -m venv .venv38
	.venv38/bin/pip install --quiet 'boto3>=1.35.16'
	touch $@

$(NXLOG_PYTHON)/.installed:
	$(SYSTEM_PYTHON) -m pip install --quiet --target $(NXLOG_PYTHON) 'boto3>=1.35.16' \
	    zstandard pyarrow
	touch $@

nxlog: $(NXLOG_PYTHON)/.installed
	bash $(SHARED)/nxlog/build.sh

bench: $(BIN)/.installed nxlog
	$(BIN)/python bench/nxlog_bench.py

demo: $(BIN)/.installed
	$(BIN)/python demo.py

# the two drop-in scripts, generated from nxlog_s3/ (a test fails while they differ from it)
scripts:
	$(PYTHON) tools/amalgamate.py

dist: $(BIN)/.installed
	$(BIN)/python -m build --outdir dist .

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# every test but the reliability scenarios (make reliability runs those, and CI runs both)
test: lint $(OLDEST)
	OLDEST_PYTHON=$(if $(OLDEST),$(CURDIR)/.venv38/bin/python) $(BIN)/python -m pytest \
	    -n 2 -m "not reliability" --durations=10

# the parts alone: no S3, no script loaded (tests/unit/)
unit: $(BIN)/.installed
	$(BIN)/python -m pytest -q tests/unit

# docs/RELIABILITY.md, from the reliability, bad-input, configuration and security tests
reliability: $(BIN)/.installed
	$(BIN)/python tests/reliability_report.py

soak: $(BIN)/.installed
	$(BIN)/python tests/reliability_report.py --soak

clean:
	rm -rf $(VENV) .venv38 $(NXLOG_PYTHON) demo-output .pytest_cache .ruff_cache .hypothesis *.egg-info nxlog_stub.positions.json \
	    build dist
