"""Turn one GetImageFrame answer into verified stored pixel values.

HealthImaging serves lossless frames as HTJ2K; ``imagecodecs.htj2k_decode`` (OpenJPH) decodes them
bit-exactly and releases the GIL, so decoding in threads uses every core. The full-resolution checksum
HealthImaging records at import is a CRC32 over the decoded pixels exactly as the decoder returns them,
so it is checked before any reinterpretation of the values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import imagecodecs
import numpy as np

from model_code.healthimaging.document import FramePlan, PixelFormat
from model_code.healthimaging.errors import FrameIntegrityError

# contentType -> codec. HTJ2K is the default answer; JPEG 2000 part 1 and raw pixels are what HealthImaging
# returns for image sets stored in those transfer syntaxes.
_HTJ2K_TYPES = frozenset({"", "image/jph", "image/jphc"})
_J2K_TYPES = frozenset({"image/j2c", "image/jp2"})
_RAW_TYPES = frozenset({"application/octet-stream"})
# zlib-ng's CRC32 (SIMD) is about ten times zlib's on a 512x512 frame; same polynomial, same value.
_crc32: Callable[[Any], int] = imagecodecs.zlibng_crc32 if imagecodecs.ZLIBNG.available else imagecodecs.zlib_crc32


def _fail(plan: FramePlan, message: str, image_set_id: str) -> FrameIntegrityError:
    return FrameIntegrityError(
        message,
        image_set_id=image_set_id,
        frame_id=plan.frame_id,
        sop_instance_uid=plan.sop_instance_uid,
        frame_number=plan.frame_number,
    )


def _decode(data: bytes, content_type: str, fmt: PixelFormat, out: np.ndarray | None) -> np.ndarray:
    kind = content_type.split(";")[0].strip().lower()
    if kind in _HTJ2K_TYPES:
        if out is not None:
            try:
                return np.asarray(imagecodecs.htj2k_decode(data, out=out))
            except ValueError:
                pass  # not the size or sample width the header says: decode plainly to report what it is
        return np.asarray(imagecodecs.htj2k_decode(data))
    if kind in _J2K_TYPES:
        return np.asarray(imagecodecs.jpeg2k_decode(data))
    if kind in _RAW_TYPES:
        raw = np.frombuffer(data, dtype=fmt.dtype.newbyteorder("<"))
        if raw.size != fmt.rows * fmt.cols:
            raise ValueError(f"{len(data)} bytes of raw pixels do not make a {fmt.rows}x{fmt.cols} frame")
        return raw.reshape(fmt.rows, fmt.cols).astype(fmt.dtype)  # a writable, native-order copy
    raise ValueError(
        f"content type {content_type!r} is not HTJ2K, JPEG 2000 or raw pixels; request the frame in its "
        "HTJ2K transfer syntax (the HealthImaging default)"
    )


def _stored_values(raw: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """The stored values in the dtype the header promises (PixelRepresentation, BitsAllocated).

    Signed values are sign-extended from BitsStored, as DICOM defines them. That is also right for
    codestreams that carry signed data as unsigned samples (pydicom's J2K_pixelrep_mismatch.dcm is one):
    the low BitsStored bits are the value either way, so the header, not the codestream, decides.
    Works in place: ``raw`` may be a reusable buffer.
    """
    target = fmt.dtype
    bits = np.dtype(f"u{target.itemsize}")
    unsigned = raw.view(bits)
    if not fmt.signed:
        return unsigned
    shift = fmt.bits_allocated - fmt.bits_stored
    if shift > 0 and not _sign_extended(unsigned.view(target), fmt.bits_stored):
        np.left_shift(unsigned, shift, out=unsigned)
        np.right_shift(unsigned.view(target), shift, out=unsigned.view(target))  # arithmetic: keeps the sign
    return unsigned.view(target)


def _sign_extended(values: np.ndarray, bits_stored: int) -> bool:
    """Whether every value already is a BitsStored-bit signed value (what a decoder of a signed codestream
    gives): then sign extension would change nothing, and two reads cost a quarter of its two writes."""
    if values.size == 0:
        return True
    limit = 1 << (bits_stored - 1)
    return int(values.min()) >= -limit and int(values.max()) < limit


def decode_frame(
    data: bytes,
    content_type: str,
    plan: FramePlan,
    *,
    image_set_id: str = "",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decoded stored values of one frame, shape (rows, cols), checksum verified where recorded.

    ``out``, an unsigned array of the frame's shape and sample width, is decoded into (and the result
    shares its memory): reusing one per thread spares a fresh allocation, and its page faults, per frame.
    Raises :class:`FrameIntegrityError` naming the frame when it cannot be decoded, has the wrong size or
    sample width, or its pixels do not match the recorded CRC32.
    """
    fmt = plan.pixel_format
    try:
        raw = _decode(data, content_type, fmt, out)
    except Exception as error:  # imagecodecs raises codec-specific errors; all mean the same to the caller
        raise _fail(
            plan,
            f"cannot be decoded ({error}); fetch it again, and if it persists re-import the instance",
            image_set_id,
        ) from error
    if raw.shape != (fmt.rows, fmt.cols) or raw.dtype.itemsize != fmt.dtype.itemsize:
        raise _fail(
            plan,
            f"decoded to shape {raw.shape} of {raw.dtype.itemsize * 8}-bit samples, the header says "
            f"({fmt.rows}, {fmt.cols}) of {fmt.bits_allocated}-bit: the frame does not belong to this instance "
            "or is not single-channel",
            image_set_id,
        )
    if plan.checksum is not None:
        # HealthImaging's CRC32 covers the decoder's output as is, before any reinterpretation.
        actual = int(_crc32(np.ascontiguousarray(raw)))
        if actual != plan.checksum:
            raise _fail(
                plan,
                f"pixel checksum {actual} does not match {plan.checksum} recorded at import: the "
                "frame was corrupted in transit or storage; fetch it again, and if it persists re-import "
                "the instance",
                image_set_id,
            )
    return _stored_values(raw, fmt)
