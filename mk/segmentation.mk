# Spleen segmentation (issue 4): DICOM validator, benchmark venv, focused tests, benchmark.
# Included by the top Makefile (-include mk/*.mk), which defines VENV, PY, `venv` and TEST_PREREQS.

BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_ARGS ?=
# MONAI Deploy App SDK 4 pulls holoscan (and cupy, tritonclient): never in the main venv.
BENCH_REQUIREMENTS := monai-deploy-app-sdk==4.0.0 torch==2.13.0 monai==1.6.1 numpy==2.4.6 \
	pydicom==3.0.2 highdicom==0.28.2 nibabel==5.4.2 pillow==13.0.0 typeguard==4.6.0

# The SEG tests validate every written file with dciodvfy.
TEST_PREREQS += dicom-tools

.PHONY: dicom-tools bench-venv test-segmentation bench-segmentation

dicom-tools:  ## install dciodvfy (Debian dicom3tools) when it is missing
	@command -v dciodvfy >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq dicom3tools; }

$(BENCH_VENV)/.installed:
	python3 -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q $(BENCH_REQUIREMENTS)
	touch $@

bench-venv: $(BENCH_VENV)/.installed  ## the segmentation benchmark's venv: MONAI Deploy App SDK 4 + holoscan (~1.5 GB)

test-segmentation: venv dicom-tools  ## segmentation, loader, phantom and DICOM writer tests only
	$(PY) -m pytest tests/model_code/segmentation tests/model_code/imaging -q --durations=10

# holoscan asks for a 32 MB stack; it runs with less, but warns.
bench-segmentation: bench-venv  ## ours vs a MONAI Deploy app of stock operators (our MAP app), 48x512x512 CT (BENCH_ARGS="--repeats 5")
	ulimit -s 32768 2>/dev/null; PYTHONPATH=. $(BENCH_PY) benchmarks/segmentation_pipeline.py $(BENCH_ARGS)
