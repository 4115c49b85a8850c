"""decode_frame by GetImageFrame content type, with the reusable output buffer the loader passes."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest

from model_code.healthimaging import FrameIntegrityError
from model_code.healthimaging.decode import decode_frame
from model_code.healthimaging.document import FramePlan, PixelFormat

PIXELS = np.arange(-60, 60, dtype=np.int16).reshape(10, 12) * 30


def _plan(checksum: int | None = None) -> FramePlan:
    fmt = PixelFormat(rows=10, cols=12, bits_allocated=16, bits_stored=16, signed=True)
    return FramePlan("a" * 32, "1.2.3", 1, checksum, fmt, {}, {})


@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        ("image/jph", lambda a: imagecodecs.htj2k_encode(a, reversible=True)),  # HealthImaging's default
        ("", lambda a: imagecodecs.htj2k_encode(a, reversible=True)),  # no content type: HTJ2K
        ("image/j2c", lambda a: imagecodecs.jpeg2k_encode(a, level=0, codecformat="J2K")),  # stored as JPEG 2000
        ("application/octet-stream", lambda a: a.astype("<i2").tobytes()),  # stored uncompressed
    ],
)
@pytest.mark.parametrize("with_buffer", [True, False])
def test_each_content_type_decodes_to_the_stored_values(content_type, encode, with_buffer):
    out = np.empty((10, 12), np.uint16) if with_buffer else None
    pixels = decode_frame(bytes(encode(PIXELS)), content_type, _plan(), out=out)
    np.testing.assert_array_equal(pixels, PIXELS)
    assert pixels.dtype == np.int16


def test_unsupported_content_type_says_what_to_request():
    with pytest.raises(FrameIntegrityError, match="request the frame in its HTJ2K transfer syntax"):
        decode_frame(b"\x00" * 16, "video/mp4", _plan())
