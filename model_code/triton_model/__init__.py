"""The Triton runtime: the python-backend model (``backend``) and its repository entry and archive (``package``).

Imports the core and ``segmentation`` only; the package module (config, model.py, archive) is also what the
``monai-platform`` CLI and the approval stack render from. Never name this folder ``triton``: it would shadow
the ``triton`` module.
"""
