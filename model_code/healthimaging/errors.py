"""Errors a user of the HealthImaging connector can act on.

Each one names the resource at fault (data store, image set, frame) and says what to do next.
Throttling and 5xx answers never surface here: botocore's retry mode absorbs them (see client.py).
"""

from __future__ import annotations


class HealthImagingError(Exception):
    """Base class: something about an image set prevents loading it."""


class ImageSetNotFound(HealthImagingError, LookupError):  # noqa: N818 - the name the issue and callers use
    """HealthImaging answered ResourceNotFoundException for an image set (or one of its frames)."""

    def __init__(self, datastore_id: str, image_set_id: str, *, detail: str = "") -> None:
        self.datastore_id = datastore_id
        self.image_set_id = image_set_id
        what = f" ({detail})" if detail else ""
        super().__init__(
            f"image set {image_set_id} was not found in data store {datastore_id}{what}: check both IDs, the "
            "region of the client, and that the import job that creates the image set has completed"
        )


class SeriesNotFound(HealthImagingError, LookupError):  # noqa: N818 - reads like its sibling ImageSetNotFound
    """The requested SeriesInstanceUID is not in the image set (or the image set holds no image series)."""

    def __init__(self, image_set_id: str, series_instance_uid: str | None, available: list[str]) -> None:
        self.image_set_id = image_set_id
        self.series_instance_uid = series_instance_uid
        self.available = tuple(available)
        if series_instance_uid is None:
            message = f"image set {image_set_id} holds no series with image frames: there are no pixels to load"
        else:
            shown = ", ".join(available) if available else "none"
            message = (
                f"series {series_instance_uid} is not in image set {image_set_id} (series with frames: {shown}): "
                "pass one of those as series_instance_uid, or search the study's other image sets"
            )
        super().__init__(message)


class FrameIntegrityError(HealthImagingError):
    """A frame could not be decoded, or its pixels do not match the checksum HealthImaging recorded."""

    def __init__(self, message: str, *, image_set_id: str, frame_id: str, sop_instance_uid: str, frame_number: int):
        self.image_set_id = image_set_id
        self.frame_id = frame_id
        self.sop_instance_uid = sop_instance_uid
        self.frame_number = frame_number
        super().__init__(
            f"frame {frame_id} (instance {sop_instance_uid}, frame {frame_number}) of image set {image_set_id}: "
            f"{message}"
        )
