"""Test support: fakes, builders and harnesses for the tests, the benchmarks and the local make targets.

Never imported by model_code, and copied into no image (tests/model_code/test_runtime_isolation.py checks
both). One module per line:

- ``healthimaging``: a loopback HealthImaging and image-set builders
- ``series``: synthetic series zips and SEG read-back
- ``servers``: TorchServe and tritonserver started on 127.0.0.1
- ``edge``: the edge runner in process
- ``orthanc``: a private Orthanc with its DICOMweb plugin on 127.0.0.1
- ``models``: reference model directories (threshold, pooled threshold, untrained UNet)
- ``aws_account``: the offline rehearsal account of ``make deploy`` and ``monai-platform doctor`` (moto plus
  simulated CodePipeline executions and HealthImaging)
- ``local_model``: which model ``make serve`` / ``make serve-triton`` serve when none is named
"""
