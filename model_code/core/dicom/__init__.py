"""Types and helpers for a loaded DICOM image series, shared by every loader and writer."""

from model_code.imaging.errors import InvalidSeriesError
from model_code.imaging.series import ImageSeries, series_from_datasets

__all__ = ["ImageSeries", "InvalidSeriesError", "series_from_datasets"]
