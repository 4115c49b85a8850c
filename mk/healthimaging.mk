# HealthImaging connector (issue 3, items 4-7). Usage and figures: docs/healthimaging.md.
# The reference connector (ahitodicominterface) and its OpenJPEG decoder are pinned in requirements-dev.txt;
# they install into the main venv without conflict, so no separate venv is needed.

HI_FRAMES ?= 256
HI_LATENCY_MS ?= 0 20

.PHONY: test-healthimaging lint-healthimaging bench-healthimaging

test-healthimaging: venv  ## HealthImaging connector tests (Stubber + loopback server)
	$(PY) -m pytest tests/model_code/healthimaging -q --durations=10

lint-healthimaging: venv  ## ruff + mypy over the HealthImaging connector, its tests and benchmark
	$(VENV)/bin/ruff check model_code/healthimaging tests/model_code/healthimaging benchmarks/healthimaging_load.py
	$(VENV)/bin/mypy model_code/healthimaging tests/model_code/healthimaging benchmarks/healthimaging_load.py

bench-healthimaging: venv  ## ours vs AHItoDICOM on a loopback image set (HI_FRAMES, HI_LATENCY_MS)
	$(PY) benchmarks/healthimaging_load.py --frames $(HI_FRAMES) --latency-ms $(HI_LATENCY_MS)
