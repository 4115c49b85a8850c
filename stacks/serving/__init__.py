"""Serving stack: the asynchronous segmentation endpoint and its autoscaling."""
