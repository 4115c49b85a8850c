# The backfill (issue 18): its item logic's tests and benchmark. Usage and figures: docs/backfill.md.
# Included by the top Makefile (-include mk/*.mk), which defines PY and `venv`.

BACKFILL_IMAGE_SETS ?= 10000

.PHONY: test-backfill bench-backfill

test-backfill: venv  ## the backfill's tests (item logic against the loopback HealthImaging and moto)
	$(PY) -m pytest tests/stacks/test_backfill_items.py tests/stacks/backfill_runtime tests/stacks/test_results_index.py -q --durations=5

bench-backfill: venv  ## image sets/s the backfill's item logic sustains on a loopback archive (BACKFILL_IMAGE_SETS)
	$(PY) benchmarks/backfill_throughput.py --image-sets $(BACKFILL_IMAGE_SETS)
