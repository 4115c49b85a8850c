# DICOMweb: the tests run a private Orthanc with its DICOMweb plugin on 127.0.0.1 (testkit/orthanc.py).
# Included by the top Makefile (-include mk/*.mk), which defines TEST_PREREQS.

TEST_PREREQS += orthanc

.PHONY: orthanc

orthanc:  ## install Orthanc and its DICOMweb plugin (Debian orthanc, orthanc-dicomweb) when missing; the tests start their own
	@{ command -v Orthanc >/dev/null 2>&1 && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so; } || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb; \
		  systemctl disable --now orthanc >/dev/null 2>&1 || service orthanc stop >/dev/null 2>&1 || true; }
