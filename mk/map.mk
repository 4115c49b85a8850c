# MONAI Application Package of the spleen app (issue 9 item 4): its venv, tests and packaging.
# Included by the top Makefile (-include mk/*.mk), which defines VENV, PY, `venv` and TEST_PREREQS.

MAP_VENV ?= .venv-map
MAP_PY := $(MAP_VENV)/bin/python
MAP_TAG ?= spleen-seg-map:latest
MAP_MODEL_DIR ?= build/map-model
# The benchmark venv's pins (mk/segmentation.mk: MONAI Deploy App SDK 4, holoscan, torch, monai) plus what the
# HealthImaging connector needs, at requirements.txt's versions. Expanded in the recipe, after every mk/*.mk.
MAP_EXTRA_REQUIREMENTS := boto3==1.44.5 botocore==1.44.5 imagecodecs==2026.3.6 pytest==9.2.0

.PHONY: map-venv test-map map-package

$(MAP_VENV)/.installed: mk/map.mk mk/segmentation.mk
	@test -x $(MAP_PY) || python3 -m venv $(MAP_VENV)
	$(MAP_PY) -m pip install -q --disable-pip-version-check $(BENCH_REQUIREMENTS) $(MAP_EXTRA_REQUIREMENTS) 2>&1 | { $(PIP_NOISE); }
	@touch $@

map-venv: $(MAP_VENV)/.installed  ## the MAP venv: MONAI Deploy App SDK 4 + holoscan + the HealthImaging connector (~1.5 GB)

# holoscan asks for a 32 MB stack; it runs with less, but warns.
test-map: map-venv  ## the MAP app's tests, in the MAP venv (folder run and loopback HealthImaging run)
	ulimit -s 32768 2>/dev/null; $(MAP_PY) -m pytest tests/map_app -q --durations=10 -p no:cacheprovider

map-package: map-venv  ## build the MAP image with monai-deploy package (needs Docker; MAP_TAG, MAP_MODEL_DIR)
	$(MAP_VENV)/bin/monai-deploy package model_code/map_app -c model_code/map_app/app.yaml -t $(MAP_TAG) \
		--platform x86_64 -m $(MAP_MODEL_DIR) -l DEBUG
