"""Turn one GetImageFrame answer into verified stored pixel values.

HealthImaging serves lossless frames as HTJ2K; ``imagecodecs.htj2k_decode`` (OpenJPH) decodes them
bit-exactly and releases the GIL, so decoding in threads uses every core. The full-resolution checksum
HealthImaging records at import is a CRC32 over the decoded pixels exactly as the decoder returns them,
so it is checked before any reinterpretation of the values.
"""

from __future__ import annotations

import zlib

import imagecodecs
import numpy as np

from model_code.healthimaging.document import FramePlan, PixelFormat
from model_code.healthimaging.errors import FrameIntegrityError

# contentType -> codec. HTJ2K is the default answer; JPEG 2000 part 1 and raw pixels are what HealthImaging
# returns for image sets stored in those transfer syntaxes.
_HTJ2K_TYPES = frozenset({"", "image/jph", "image/jphc"})
_J2K_TYPES = frozenset({"image/j2c", "image/jp2"})
_RAW_TYPES = frozenset({"application/octet-stream"})


def _fail(plan: FramePlan, message: str, image_set_id: str) -> FrameIntegrityError:
    return FrameIntegrityError(
        message,
        image_set_id=image_set_id,
        frame_id=plan.frame_id,
        sop_instance_uid=plan.sop_instance_uid,
        frame_number=plan.frame_number,
    )


def _decode(data: bytes, content_type: str, fmt: PixelFormat) -> np.ndarray:
    kind = content_type.split(";")[0].strip().lower()
    if kind in _HTJ2K_TYPES:
        return np.asarray(imagecodecs.htj2k_decode(data))
    if kind in _J2K_TYPES:
        return np.asarray(imagecodecs.jpeg2k_decode(data))
    if kind in _RAW_TYPES:
        return np.frombuffer(data, dtype=fmt.dtype.newbyteorder("<")).reshape(fmt.rows, fmt.cols)
    raise ValueError(
        f"content type {content_type!r} is not HTJ2K, JPEG 2000 or raw pixels; request the frame in its "
        "HTJ2K transfer syntax (the HealthImaging default)"
    )


def _as_stored_dtype(pixels: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """Values in the dtype PixelRepresentation/BitsAllocated promise, sign-extending from BitsStored if needed.

    Some codestreams carry signed data as unsigned samples (pydicom's J2K_pixelrep_mismatch.dcm is one):
    the header is the authority on signedness.
    """
    target = fmt.dtype
    if pixels.dtype == target:
        return pixels
    if fmt.signed and pixels.dtype.kind == "u":
        wide = pixels.astype(np.int64)
        bits = fmt.bits_stored
        wide = np.where(wide >= (1 << (bits - 1)), wide - (1 << bits), wide)
        return wide.astype(target)
    return pixels.astype(target)


def decode_frame(data: bytes, content_type: str, plan: FramePlan, *, image_set_id: str = "") -> np.ndarray:
    """Decoded stored values of one frame, shape (rows, cols), checksum verified where recorded.

    Raises :class:`FrameIntegrityError` naming the frame when it cannot be decoded, has the wrong size, or its
    pixels do not match the recorded CRC32.
    """
    fmt = plan.pixel_format
    try:
        pixels = _decode(data, content_type, fmt)
    except Exception as error:  # imagecodecs raises codec-specific errors; all mean the same to the caller
        raise _fail(
            plan,
            f"cannot be decoded ({error}); fetch it again, and if it persists re-import the instance",
            image_set_id,
        ) from error
    if pixels.shape != (fmt.rows, fmt.cols):
        raise _fail(
            plan,
            f"decoded to shape {pixels.shape}, the header says ({fmt.rows}, {fmt.cols}): the frame "
            "does not belong to this instance or is not single-channel",
            image_set_id,
        )
    if plan.checksum is not None:
        actual = zlib.crc32(np.ascontiguousarray(pixels).data)
        if actual != plan.checksum:
            raise _fail(
                plan,
                f"pixel checksum {actual} does not match {plan.checksum} recorded at import: the "
                "frame was corrupted in transit or storage; fetch it again, and if it persists re-import "
                "the instance",
                image_set_id,
            )
    return _as_stored_dtype(pixels, fmt)
