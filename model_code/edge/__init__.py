"""The offline edge runner: numpy pre/post-processing, onnxruntime inference, a small HTTP service.

Nothing here imports torch: an edge device installs numpy, nibabel, pydicom, highdicom and onnxruntime only.
"""
