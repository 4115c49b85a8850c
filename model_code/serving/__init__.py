"""Serving logic shared by the containers: request decoding, series fetching, response encoding.

The container entry points (containers/pytorch-inference/code/inference.py, the Triton python model) stay
thin and call into here, so every serving path runs the same code and the same error mapping.
"""
