# User CLI (issue 8 item 5): `monai-platform`, run from the repository without installing it.
# Included by the top Makefile (-include mk/*.mk), which defines VENV, PY and `venv`.

CLI_ARGS ?= --help

.PHONY: cli test-cli

cli: venv  ## run the platform CLI: make cli CLI_ARGS="--stage dev models list" (needs AWS credentials)
	$(PY) -m platform_cli $(CLI_ARGS)

test-cli: venv  ## the CLI's tests only (moto + botocore Stubber, no AWS)
	$(PY) -m pytest tests/platform_cli -q --durations=10
