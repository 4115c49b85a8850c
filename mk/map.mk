# MONAI Application Package of the spleen app (issue 9 item 4): its venv, tests and packaging (docs/map.md).
# Included by the top Makefile (-include mk/*.mk), which defines PYTHON, PIP_NOISE and TEST_PREREQS.

MAP_VENV ?= .venv-map
MAP_PY := $(MAP_VENV)/bin/python
# The HAP/MAP packager left holoscan-cli at 4.0 (the SDK 4 venv gets 5.x, whose `package` builds Holoscan
# modules): packaging runs from its own small venv with the last 3.x CLI, which also installs `monai-deploy`.
MAP_PACKAGE_VENV ?= .venv-map-package
MAP_TAG ?= spleen-seg-map:latest
MAP_MODEL_DIR ?= build/map-model
MAP_CUDA ?= 13
# MONAI Deploy App SDK 4 pulls holoscan (and cupy, tritonclient): never in the main venv. This venv also runs the
# segmentation benchmark (mk/segmentation.mk). Names without a version take requirements.txt's pin (-c); the
# rest are pinned here. pytest is requirements-dev.txt's version: that file cannot be a constraints file, pip
# refuses constraints with extras (moto[...]).
MAP_REQUIREMENTS := monai-deploy-app-sdk==4.0.0 typeguard==4.6.0 pytest==9.2.0 \
	torch monai numpy pydicom highdicom nibabel pillow boto3 botocore imagecodecs \
	requests retrying dicomweb-client

# tests/map_app/test_map_venv.py runs the MAP tests in this venv from the main suite (~10 s).
TEST_PREREQS += map-venv

.PHONY: map-venv test-map map-package

# The pip that $(PYTHON)'s venv module bundles: an upgrade to whatever pip is newest would not be reproducible.
$(MAP_VENV)/.installed: mk/map.mk requirements.txt
	@test -x $(MAP_PY) || $(PYTHON) -m venv $(MAP_VENV)
	$(MAP_PY) -m pip install -q --disable-pip-version-check -c requirements.txt $(MAP_REQUIREMENTS) 2>&1 | { $(PIP_NOISE); }
	@touch $@

map-venv: $(MAP_VENV)/.installed  ## the MAP venv: MONAI Deploy App SDK 4 + holoscan + the HealthImaging connector (~1.5 GB)

# holoscan asks for a 32 MB stack; it runs with less, but warns.
test-map: map-venv  ## the MAP app's tests in the MAP venv (phantom folder run, loopback HealthImaging run)
	ulimit -s 32768 2>/dev/null; $(MAP_PY) -m pytest tests/map_app -q --durations=10 -p no:cacheprovider

$(MAP_PACKAGE_VENV)/.installed: mk/map.mk
	@test -x $(MAP_PACKAGE_VENV)/bin/python || $(PYTHON) -m venv $(MAP_PACKAGE_VENV)
	$(MAP_PACKAGE_VENV)/bin/pip install -q --disable-pip-version-check holoscan-cli==3.11.0 2>&1 | { $(PIP_NOISE); }
	@touch $@

# --add: the app imports the core and the HealthImaging connector from model_code; only those are staged
# (model_code/runtimes.py: map_app and what it may import), so the image carries no other runtime and no testkit.
MAP_STAGE ?= build/map-package/model_code
map-package: $(MAP_PACKAGE_VENV)/.installed  ## build the MAP image (needs Docker; MAP_TAG, MAP_MODEL_DIR, MAP_CUDA)
	$(PYTHON) -m model_code.runtimes stage map_app $(MAP_STAGE)
	$(MAP_PACKAGE_VENV)/bin/monai-deploy package model_code/map_app --add $(MAP_STAGE) \
		-c model_code/map_app/app.yaml -t $(MAP_TAG) --platform x86_64 -m $(MAP_MODEL_DIR) \
		--sdk monai-deploy --sdk-version 4.0.0 --cuda $(MAP_CUDA) -l DEBUG
