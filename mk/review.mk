# Release pipeline and PR infrastructure review (issue 8, items 3 and 4). See docs/release.md.
# Included by the top Makefile (-include mk/*.mk), which defines VENV, PY, STAGE, CDK, `venv` and `node`.

BASE ?= origin/main
REVIEW_OUT ?= build/review.md

.PHONY: review synth-pipeline

review: venv node  ## PR review: synthesize BASE (a git ref) and the working tree, write REVIEW_OUT (Markdown)
	@mkdir -p $(dir $(REVIEW_OUT))
	$(PY) -m scripts.review --base $(BASE) --stage $(STAGE) --output $(REVIEW_OUT)

synth-pipeline: venv node  ## synthesize the self-mutating release pipeline (what its synth step runs)
	$(MAKE) synth CDK="$(CDK) -c pipeline=true"
