"""The SageMaker runtime: the async endpoint's handler (model_fn, input_fn, predict_fn, output_fn), its
settings, AWS clients and series sources (a zip, an S3 prefix, a HealthImaging image set).

The container entry point (containers/pytorch-inference/code/inference.py) stays thin and calls into here;
the request flow, decoding, encoding and error types are the core's (``model_code.core``), shared with the
Triton model and the edge runner. Imports: the core, ``segmentation`` and ``healthimaging`` only.
"""
