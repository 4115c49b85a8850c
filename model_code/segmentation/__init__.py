"""The torch segmentation engine: the pipeline (``pipeline``), its transforms (``transforms_torch``), the
contract's networks (``networks``), the PNG overlay and the ``python -m model_code.segmentation.predict`` CLI.
Imports the core only (plus torch, MONAI and pillow)."""
