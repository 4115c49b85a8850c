"""Generic DICOM series: the loaded-series type and its geometry (``series``), reading a folder or zip of
files (``files``), and the DICOM SEG writer (``seg``). Shared by every loader and writer."""

from model_code.core.dicom.series import ImageSeries, series_from_datasets
from model_code.core.errors import InvalidSeriesError

__all__ = ["ImageSeries", "InvalidSeriesError", "series_from_datasets"]
