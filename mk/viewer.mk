# The viewer (issue 17): OHIF's prebuilt dist/ for the viewer stack, and the browser its test drives.
# Included by the top Makefile (-include mk/*.mk), which defines PY, `venv` and TEST_PREREQS. Docs: docs/viewer.md.

VIEWER_SITE := stacks/viewer/ohif

# The browser test serves dist/ and drives Debian's Chromium; a synth with viewer.enabled uploads dist/.
TEST_PREREQS += viewer-site chromium

.PHONY: viewer-site chromium test-viewer

# Its own npm project: @ohif/app and its 759 locked packages stay out of the CDK CLI's node_modules. Install
# scripts never run: only the prebuilt dist/ is used.
$(VIEWER_SITE)/node_modules/.installed: $(VIEWER_SITE)/package.json $(VIEWER_SITE)/package-lock.json
	npm ci --prefix $(VIEWER_SITE) --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

viewer-site: $(VIEWER_SITE)/node_modules/.installed  ## install OHIF's prebuilt viewer (npm ci of the pinned @ohif/app)

chromium:  ## install Chromium (Debian chromium) when missing; the viewer test drives it headless
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }

test-viewer: venv viewer-site chromium orthanc  ## the viewer tests: the stack, its proxy, and our SEG in a real browser
	$(PY) -m pytest tests/integration/test_viewer.py tests/stacks/test_viewer_stack.py tests/stacks/viewer_runtime -q --durations=10
