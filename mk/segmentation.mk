# Spleen segmentation (issue 4): DICOM validator, focused tests, benchmark.
# Included by the top Makefile (-include mk/*.mk), which defines PY, `venv` and TEST_PREREQS; the benchmark runs
# in the MAP venv (mk/map.mk: MAP_PY, `map-venv`), whose app is the MONAI Deploy side it measures.

BENCH_ARGS ?=
BENCH_BUNDLE_ARGS ?=

# The SEG tests validate every written file with dciodvfy.
TEST_PREREQS += dicom-tools

.PHONY: dicom-tools test-segmentation bench-segmentation bench-bundle

dicom-tools:  ## install dciodvfy (Debian dicom3tools) when it is missing
	@command -v dciodvfy >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq dicom3tools; }

test-segmentation: venv dicom-tools  ## segmentation, loader, phantom and DICOM writer tests only
	$(PY) -m pytest tests/model_code/segmentation tests/model_code/core/dicom tests/model_code/synthetic -q --durations=10

# holoscan asks for a 32 MB stack; it runs with less, but warns.
bench-segmentation: map-venv  ## ours vs a MONAI Deploy app of stock operators (our MAP app), 48x512x512 CT (BENCH_ARGS="--repeats 5")
	ulimit -s 32768 2>/dev/null; PYTHONPATH=. $(MAP_PY) benchmarks/segmentation_pipeline.py $(BENCH_ARGS)

bench-bundle: venv  ## one zoo-layout bundle: our fast path vs MONAI's Compose+SlidingWindowInferer+Invertd alone, 48x512x512 (BENCH_BUNDLE_ARGS="--network unet --device cuda")
	PYTHONPATH=. $(PY) benchmarks/bundle_fast_path.py $(BENCH_BUNDLE_ARGS)
