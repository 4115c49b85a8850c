"""The offline edge runner: numpy pre/post-processing, onnxruntime inference, a small HTTP service.

Imports the core only: no torch, no MONAI, no boto3, no other runtime (tests/model_code/test_runtime_isolation.py).
An edge device installs numpy, nibabel, pydicom, highdicom and onnxruntime, plus the core's DICOMweb client's
pure-Python pins (``requirements.txt``); a TorchScript bundle adds torch, imported only for that format.
"""
