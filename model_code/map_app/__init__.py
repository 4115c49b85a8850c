"""The spleen app as a MONAI Application Package (MONAI Deploy App SDK 4; see docs/map.md).

Runs only in the MAP venv (``make map-venv``): the SDK pulls holoscan, which the main venv never carries.
Nothing is imported here so that ``python -m model_code.map_app`` stays the one entry point.
"""
