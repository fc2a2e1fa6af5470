# The two commands of the README: `make results` and `make test`. Each sets up .venv itself.
SHELL := /bin/bash
PYTHON ?= python3
PROFILE ?= demo
CORES ?= all
GPUS ?= 1
SHARDS ?= 0
# the staged datasets beside a checkout of this workspace, else data/ (see data/README.md)
DATA_ROOT ?= $(if $(SEGSTUDY_DATA_ROOT),$(SEGSTUDY_DATA_ROOT),$(if $(wildcard ../shared/datasets/bsds500),$(abspath ../shared/datasets),$(CURDIR)/data))
UV_VERSION := 0.13.8
UV := .uv/bin/uv
VENV := .venv
STAMP := $(VENV)/.installed
export SEGSTUDY_DATA_ROOT := $(DATA_ROOT)

COURSE ?= course
SIZE ?= demo
.PHONY: env results paper test data verify benchmark lab coursework clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --extra test --extra slurm --extra teach --python $(PYTHON)
	touch $@

env: $(STAMP)  ## create .venv from uv.lock (torch 2.13.0 + torchvision 0.28.0 from PyPI)

results: env  ## run every notebook in $(PROFILE) (default demo) into results/, then results/README.md
	$(VENV)/bin/snakemake --cores $(CORES) --config profile=$(PROFILE) data_root=$(DATA_ROOT) --rerun-triggers mtime

paper: env  ## the paper profile (the datasets, GPUS=K GPUs, SHARDS=N jobs per configuration and seed); DRY=1: its size only
ifeq ($(DRY),1)
	$(VENV)/bin/python -m lib plan --profile paper --shards $(if $(filter-out 0,$(SHARDS)),$(SHARDS),8) --data-root $(DATA_ROOT)
else
	$(VENV)/bin/snakemake --cores $(CORES) --resources gpu=$(GPUS) --config profile=paper data_root=$(DATA_ROOT) shards=$(SHARDS) --rerun-triggers mtime
endif

test: env  ## unit tests, real-data tests (when the data are there), every notebook in the smoke profile
	$(VENV)/bin/python -m pytest

data: env  ## download BSDS500 into $(DATA_ROOT)
	$(VENV)/bin/python -m lib download bsds500 --data-root $(DATA_ROOT)

verify: env
	$(VENV)/bin/python -m lib verify bsds500 --data-root $(DATA_ROOT)

benchmark: env  ## seconds per iteration (CPU, and CUDA when present)
	$(VENV)/bin/python -m lib benchmark --reference

coursework: env  ## nbgrader course folder $(COURSE)/ from notebooks/coursework/ (SIZE=demo|smoke), solutions checked
	$(VENV)/bin/python -m lib coursework --course $(COURSE) --size $(SIZE) --check

lab: env
	$(VENV)/bin/jupyter lab notebooks

clean:
	rm -rf results/*/ results/README.md .snakemake
