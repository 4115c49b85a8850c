"""The dependency-light core every runtime shares (docs/architecture.md).

What lives here: the model directory contract and the spleen contract (``model_dir``, ``spleen``), DICOM
series, reading and the SEG writer (``dicom``), the error types (``errors``), request decoding and HTTP
encoding (``requests``, ``http``), one request's flow from series to answer (``service``), the settings every
model server reads (``settings``), the one S3-URI parser (``s3_uri``), the segmentation geometry with its
numpy transforms (``geometry``, ``transforms_numpy``), and the DICOMweb client (``dicomweb``).

What it may import: the standard library, numpy, pydicom and nibabel (orientation maths, as MONAI uses it);
highdicom only in ``dicom.seg`` (the SEG writer); requests and dicomweb-client in ``dicomweb``, whose SigV4
signer imports botocore inside its calls only (HealthImaging's DICOMweb host). Never torch, MONAI, boto3 or
another model_code package: ``tests/model_code/test_runtime_isolation.py`` checks it, with the table in
``model_code/runtimes.py``.
"""
