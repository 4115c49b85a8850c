# One command from a bootstrapped account (issue 15 item 4): docs/deploy.md.
# Included by the top Makefile (-include mk/*.mk), which defines PY, CDK, CDK_OUT, STAGE, `venv`, `node` and `synth`.

# cdk deploy's question before IAM or security-group widening: broadening (asks), never (CI), any-change.
DEPLOY_APPROVAL ?= broadening

.PHONY: deploy deploy-stacks deploy-rehearsal doctor test-deploy

deploy: synth  ## STAGE from a bootstrapped account: foundation, image pipeline, model seed, the rest, doctor (resumes)
	$(PY) -m scripts.deploy --stage $(STAGE) --cdk-out $(CDK_OUT) --require-approval $(DEPLOY_APPROVAL)

deploy-stacks: synth  ## cdk deploy --all of STAGE (make deploy before issue 15: an existing platform, no images/seed/doctor)
	$(CDK) deploy --all -c stage=$(STAGE) --require-approval $(DEPLOY_APPROVAL)

deploy-rehearsal: synth  ## make deploy and doctor against an offline rehearsal account (moto + simulated services)
	$(PY) -m scripts.deploy.rehearsal --stage $(STAGE) --cdk-out $(CDK_OUT)

doctor: venv  ## monai-platform doctor for STAGE: every stack's key resources exist and answer (needs AWS credentials)
	$(PY) -m platform_cli doctor --stage $(STAGE)

test-deploy: venv  ## the deploy orchestration, doctor and the canary rehearsal (moto + Stubber, no AWS)
	$(PY) -m pytest tests/scripts/test_deploy.py tests/platform_cli/test_doctor.py \
		tests/stacks/approval_runtime/test_canary_rehearsal.py -q --durations=10
