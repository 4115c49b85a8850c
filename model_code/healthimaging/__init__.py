"""HealthImaging image-set connector: search, load (fetch + HTJ2K decode + verify), write Part-10.

``load_image_set(client, datastore_id, image_set_id)`` returns the shared :class:`ImageSeries` type.
boto3 is imported only here, in model_code (see docs/healthimaging.md).
"""

from model_code.healthimaging.client import client_config, make_client, search_image_sets
from model_code.healthimaging.errors import (
    FrameIntegrityError,
    HealthImagingError,
    ImageSetNotFound,
    SeriesNotFound,
)
from model_code.healthimaging.loader import load_image_set
from model_code.healthimaging.part10 import write_part10

__all__ = [
    "FrameIntegrityError",
    "HealthImagingError",
    "ImageSetNotFound",
    "SeriesNotFound",
    "client_config",
    "load_image_set",
    "make_client",
    "search_image_sets",
    "write_part10",
]
