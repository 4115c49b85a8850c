"""Synthetic data that production code runs, not test fakes: phantom volumes with a planted spleen (``phantom``)
and DICOM series written from them (``dicom_writer``). ``make demo`` trains and segments on them; the ONNX
export checks its network on phantom windows. numpy and pydicom only; imports no other model_code package."""
