# Serving containers (issue 6): the real serving stacks, run on 127.0.0.1 without Docker.
# Usage and the why of each target: docs/containers.md.
# Included by the top Makefile (-include mk/*.mk), which defines VENV, PY, PIP_NOISE, `venv` and TEST_PREREQS.

SERVE_VENV ?= .venv-serve
TRITON_VENV ?= .venv-triton
# TorchServe stack: the same pyenv 3.11 as the main venv; pip's find-links (/opt/wheels) resolves
# torch==2.13.0 to the local CPU wheel.
SERVE_BASE_PYTHON ?= $(shell command -v pyenv >/dev/null 2>&1 && pyenv which python3.11 2>/dev/null || command -v python3.11)
# tritonserver's python backend stub links Debian's libpython3.11: the venv must be built on that interpreter.
TRITON_BASE_PYTHON ?= /usr/bin/python3.11
PORT ?= 8080
TRITON_PORT ?= 8000
MODEL_DIR ?=
TRITON_REPOSITORY ?=
SERVE_REQUIREMENTS := containers/pytorch-inference/requirements-local.txt containers/pytorch-inference/requirements.txt
TRITON_REQUIREMENTS := containers/triton-inference/requirements-local.txt containers/triton-inference/requirements.txt
CONTAINERS_HADOLINT ?= $(VENV)/bin/hadolint

.PHONY: venv-serve venv-triton jdk serve serve-triton lint-dockerfiles test-containers bench-serving bench-serving-memory soak

# The integration tests run inside both serving stacks (tests/integration); hadolint comes with .venv.
TEST_PREREQS += venv-serve venv-triton jdk

# The stamp file rebuilds a venv only when its requirements change.
$(SERVE_VENV)/.installed: $(SERVE_REQUIREMENTS)
	rm -rf $(SERVE_VENV)
	$(SERVE_BASE_PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install -q --disable-pip-version-check -r containers/pytorch-inference/requirements-local.txt 2>&1 | { $(PIP_NOISE); }
	@if $(SERVE_VENV)/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('mms') is None)"; then \
		echo "multi-model-server is installed in $(SERVE_VENV): it clashes with torch-model-archiver" >&2; exit 1; fi
	touch $@

venv-serve: $(SERVE_VENV)/.installed  ## .venv-serve: TorchServe + sagemaker-pytorch-inference + MONAI (pyenv 3.11)

# TorchServe's frontend runs on Java 17; local_serve.py compiles its /ping plugin (ts-plugins/build.sh) with javac.
jdk:  ## install a JDK 17 (Debian openjdk-17-jdk-headless) when javac is missing
	@command -v javac >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless; }

$(TRITON_VENV)/.installed: $(TRITON_REQUIREMENTS)
	@# Debian's interpreter makes venvs only with its python3.11-venv package: install it when missing.
	@$(TRITON_BASE_PYTHON) -c "import ensurepip" 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3.11-venv; }
	rm -rf $(TRITON_VENV)
	$(TRITON_BASE_PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install -q --disable-pip-version-check -r containers/triton-inference/requirements-local.txt 2>&1 | { $(PIP_NOISE); }
	touch $@

venv-triton: $(TRITON_VENV)/.installed  ## .venv-triton: nvidia-pytriton's tritonserver + MONAI (Debian python3.11)

# sagemaker-pytorch-inference on TorchServe, 127.0.0.1:$(PORT), serving $(MODEL_DIR)
# (default: demo-output/model when `make demo` left one, else an untrained contract UNet in build/serve-model).
serve: venv-serve jdk  ## the PyTorch endpoint on 127.0.0.1:$(PORT) (MODEL_DIR=...; see docs/containers.md)
	$(SERVE_VENV)/bin/python containers/pytorch-inference/local_serve.py --port $(PORT) $(if $(MODEL_DIR),--model-dir $(MODEL_DIR))

# tritonserver (nvidia-pytriton's) on 127.0.0.1:$(TRITON_PORT), explicit model control; repository: $(TRITON_REPOSITORY),
# else a new one holding the spleen model of MODEL_DIR (same default as serve).
serve-triton: venv-triton  ## tritonserver on 127.0.0.1:$(TRITON_PORT), explicit model control
	$(TRITON_VENV)/bin/python containers/triton-inference/local_triton.py --port $(TRITON_PORT) $(if $(TRITON_REPOSITORY),--repository $(TRITON_REPOSITORY),$(if $(MODEL_DIR),--model-dir $(MODEL_DIR)))

lint-dockerfiles: venv  ## hadolint every Dockerfile
	$(CONTAINERS_HADOLINT) containers/*/Dockerfile

test-containers: venv venv-serve venv-triton jdk  ## container unit and integration tests only
	$(PY) -m pytest tests/containers tests/integration -q --durations=10

bench-serving: venv venv-serve jdk  ## cold start and per-request latency through TorchServe
	$(PY) benchmarks/serving.py

# e.g. make bench-serving-memory MEMORY_ARGS="--baseline-ref main --models threshold"
MEMORY_ARGS ?=
bench-serving-memory: venv  ## peak RSS of one request per slice, old code (--baseline-ref) against new
	$(PY) benchmarks/serving_memory.py $(MEMORY_ARGS)

# e.g. make soak SOAK_ARGS="--minutes 10 --clients 6" or SOAK_ARGS="--server edge --minutes 2"
SOAK_ARGS ?=
soak: venv venv-serve jdk  ## mixed valid/invalid requests for N minutes: throughput, statuses, RSS growth per 1,000
	$(PY) benchmarks/soak.py $(SOAK_ARGS)
