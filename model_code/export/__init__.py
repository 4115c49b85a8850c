"""Export a model directory into a self-contained edge bundle: ``python -m model_code.export``."""

from model_code.export.bundle import ExportError, ExportReport, export_bundle

__all__ = ["ExportError", "ExportReport", "export_bundle"]
