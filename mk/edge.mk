# Offline edge bundle, runner and Greengrass component (issue 9). Usage: docs/edge.md.
# Included by the top Makefile (-include mk/*.mk), which defines VENV, PY, `venv` and TEST_PREREQS.

EDGE_MODEL_DIR ?= build/edge/model
EDGE_FORMAT ?= onnx
EDGE_BUNDLE ?= build/edge/bundle
EDGE_PORT ?= 8080
EDGE_THREADS ?= 2
EDGE_VERSION ?= 1.0.0
EDGE_PREFIX ?= edge/spleen/
# The model-artifacts bucket: `aws cloudformation describe-stacks` output ModelArtifactsBucketName of the data stack.
EDGE_BUCKET ?=

# The SEG checks validate the runner's answers with dciodvfy (mk/segmentation.mk installs it).
TEST_PREREQS += dicom-tools

.PHONY: test-edge edge-demo-model edge-bundle edge-run edge-upload

test-edge: venv dicom-tools  ## export, edge runner and edge stack tests
	$(PY) -m pytest tests/model_code/export tests/model_code/edge tests/stacks/test_edge_stack.py -q --durations=10

edge-demo-model: venv  ## a MONAI bundle that exports to ONNX (pooled threshold, for demos) in EDGE_MODEL_DIR
	$(PY) -c "from testkit.models import save_pooled_threshold_model as s; print(s('$(EDGE_MODEL_DIR)'))"

edge-bundle: venv  ## export the MONAI bundle EDGE_MODEL_DIR (dir/.zip/model.tar.gz) to EDGE_BUNDLE (+ .zip, the Greengrass artifact)
	$(PY) -m model_code.export --model-dir $(EDGE_MODEL_DIR) --format $(EDGE_FORMAT) --out $(EDGE_BUNDLE) \
		--archive $(EDGE_BUNDLE).zip --force

edge-run: venv  ## serve EDGE_BUNDLE on 127.0.0.1:EDGE_PORT from the bundle's own code, as a device does
	PYTHONPATH=$(EDGE_BUNDLE)/runner $(PY) -m model_code.edge.runner --bundle $(EDGE_BUNDLE) \
		--port $(EDGE_PORT) --threads $(EDGE_THREADS)

edge-upload:  ## upload EDGE_BUNDLE.zip as component version EDGE_VERSION (before deploying the edge stack)
	@test -n "$(EDGE_BUCKET)" || { echo "set EDGE_BUCKET to the model-artifacts bucket name"; exit 2; }
	aws s3 cp $(EDGE_BUNDLE).zip s3://$(EDGE_BUCKET)/$(EDGE_PREFIX)$(EDGE_VERSION)/bundle.zip
