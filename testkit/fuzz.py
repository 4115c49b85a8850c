"""Hypothesis strategies for the request fuzz (issue 20): JSON bodies, zip archives and DICOM slices with defects.

Each strategy draws a request body from a valid one with something broken: random JSON values and nesting,
zips with hostile member names, random compression and flipped bytes, phantom slices with bytes overwritten
in their headers. The suite runs them against the parsers in process and against the real servers; the answer
must always be a 200 or a mapped 4xx, never a 500, a traceback or a hang.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile

from hypothesis import strategies as st

from testkit.series import series_zip, zip_members

_KEYS = st.sampled_from(["datastoreId", "imageSetId", "seriesInstanceUid", "dicomS3Uri", "x", "", "\u00ff"])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40),
    st.sampled_from(["a" * 32, "0123456789abcdef0123456789abcdef", "s3://bucket/prefix/", "1.2.840.1", "s://x"]),
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_KEYS, children, max_size=4)),
    max_leaves=12,
)


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    """A JSON document (valid or cut short), or raw bytes, as an /invocations body."""
    kind = draw(st.sampled_from(["document", "truncated", "bytes", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=5000))
        return b"[" * depth + b"]" * draw(st.integers(min_value=0, max_value=depth))
    text = json.dumps(draw(JSON_VALUES), allow_nan=True).encode()
    if kind == "truncated" and text:
        return text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    return text


@functools.cache
def phantom_members() -> tuple[tuple[str, bytes], ...]:
    """A small valid series (8 slices of 24x24) the fuzz breaks, member by member."""
    return tuple(zip_members(series_zip(shape=(8, 24, 24), seed=11).payload).items())


_NAMES = st.one_of(
    st.sampled_from(["../x.dcm", "/abs.dcm", "a/../../b.dcm", "C:\\x.dcm", ".hidden", "__MACOSX/x", "DICOMDIR",
                     "dir/", "ok.dcm"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20),
)


def _zip(members: list[tuple[str, bytes]], compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


@st.composite
def zip_bodies(draw: st.DrawFn) -> bytes:
    """The phantom's zip with members dropped, added under hostile names, compressed, then bytes flipped."""
    members = list(phantom_members())
    if draw(st.booleans()):
        keep = draw(st.lists(st.sampled_from(range(len(members))), unique=True, max_size=len(members)))
        members = [members[index] for index in sorted(keep)]
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        members.append((draw(_NAMES), draw(st.binary(max_size=64))))
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    data = bytearray(_zip(members, compression))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data[position] = draw(st.integers(min_value=0, max_value=255))
    return bytes(data)


@st.composite
def dicom_zip_bodies(draw: st.DrawFn) -> bytes:
    """The phantom's zip (stored) with bytes overwritten in the headers of some slices (the first 1 KB: the
    file meta and the geometry, rescale and pixel-format attributes), the CRCs recomputed (a valid zip)."""
    members = list(phantom_members())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        index = draw(st.integers(min_value=0, max_value=len(members) - 1))
        name, data = members[index]
        edited = bytearray(data)
        for _ in range(draw(st.integers(min_value=1, max_value=6))):
            position = draw(st.integers(min_value=128, max_value=min(len(edited), 1200) - 1))
            edited[position] = draw(st.sampled_from([0x00, 0xFF, 0x5C, 0x2E, 0x2D, 0x4E, 0x20, 0x7F]))
        members[index] = (name, bytes(edited))
    return _zip(members, zipfile.ZIP_STORED)
