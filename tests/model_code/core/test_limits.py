"""The input limits (model_code.core.limits): each checked before its work, each named in its error."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from model_code.core.errors import ClientError
from model_code.core.limits import SeriesGuard, check_zip_members, json_depth, unsafe_member_name
from model_code.core.settings import InputLimits


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b'{"a": 1}', 1),
        (b'{"a": [1, {"b": []}]}', 4),
        # brackets inside strings (escaped quotes too) do not nest
        (b'{"a": "[[[{{{", "b": "\\"[["}', 1),
        (b"[" * 100_000 + b"]" * 100_000, 100_000),
        (b"", 0),
    ],
)
def test_json_depth_counts_without_parsing(raw: bytes, depth: int) -> None:
    assert json_depth(raw) == depth


@pytest.mark.parametrize(
    ("name", "unsafe"),
    [
        ("series/slice_0001.dcm", False),
        ("..hidden/slice.dcm", False),  # a name that starts with two dots climbs nowhere
        ("../slice.dcm", True),
        ("series/../../etc/passwd", True),
        ("/etc/passwd", True),
        ("C:\\Windows\\slice.dcm", True),
        ("series\\..\\slice.dcm", True),
    ],
)
def test_unsafe_member_names(name: str, unsafe: bool) -> None:
    assert unsafe_member_name(name) is unsafe


def _member(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.file_size = size
    return info


@pytest.mark.parametrize(
    ("members", "limits", "status", "fragment"),
    [
        ([_member(f"{n}.dcm", 1) for n in range(11)], InputLimits(max_zip_members=10), 413, "SERVING_MAX_ZIP_MEMBERS"),
        ([_member("a.dcm", 600), _member("b.dcm", 600)], InputLimits(max_expanded_bytes=1000), 413,
         "SERVING_MAX_EXPANDED_BYTES"),
        ([_member("a.dcm", 1), _member("../b.dcm", 1)], InputLimits(), 400, "'../b.dcm'"),
    ],
)
def test_zip_members_are_checked_from_the_directory(
    members: list[zipfile.ZipInfo], limits: InputLimits, status: int, fragment: str
) -> None:
    with pytest.raises(ClientError) as raised:
        check_zip_members(members, limits)
    assert raised.value.status == status
    assert fragment in raised.value.message


def _affine(spacing: tuple[float, float, float]) -> np.ndarray:
    affine = np.eye(4)
    affine[0, 0], affine[1, 1], affine[2, 2] = spacing
    return affine


def _check(guard: SeriesGuard, shape: tuple[int, int, int], spacing: tuple[float, float, float],
           **header: object) -> None:
    guard.check_header(slices=shape[0], rows=shape[1], cols=shape[2], affine=_affine(spacing), spacing=spacing,
                       first=header.get)


@pytest.mark.parametrize(
    ("guard", "shape", "spacing", "header", "status", "fragment"),
    [
        # the model grid, computed from the header: 9 mm pixels at the model's 1.5 mm are 6x the voxels per axis
        (SeriesGuard(InputLimits(max_model_voxels=1_000_000), (1.5, 1.5, 2.0)), (20, 64, 64), (2.5, 9.0, 9.0), {},
         413, "SERVING_MAX_MODEL_VOXELS"),
        (SeriesGuard(InputLimits(max_series_pixels=1000)), (4, 16, 16), (1.0, 1.0, 1.0), {}, 413,
         "SERVING_MAX_SERIES_PIXELS"),
        (SeriesGuard(), (4, 16, 16), (0.01, 1.0, 1.0), {}, 422, "slice spacing is 0.01 mm"),
        (SeriesGuard(), (3, 16, 16), (1.0, 1.0, 1.0), {}, 422, "SERVING_MIN_SLICES"),
        (SeriesGuard(), (4, 16, 16), (1.0, 1.0, 1.0), {"BitsAllocated": 1}, 422, "BitsAllocated is 1"),
        (SeriesGuard(), (4, 16, 16), (1.0, 1.0, 1.0), {"PhotometricInterpretation": "YBR_FULL"}, 422, "'YBR_FULL'"),
        (SeriesGuard(), (4, 16, 16), (float("nan"), 1.0, 1.0), {}, 422, "not finite"),
    ],
)
def test_series_headers_are_checked_before_decoding(
    guard: SeriesGuard, shape: tuple[int, int, int], spacing: tuple[float, float, float], header: dict[str, object],
    status: int, fragment: str,
) -> None:
    with pytest.raises(ClientError) as raised:
        _check(guard, shape, spacing, **header)
    assert raised.value.status == status
    assert fragment in raised.value.message


def test_a_plausible_series_passes() -> None:
    guard = SeriesGuard(InputLimits(), (1.5, 1.5, 2.0))
    _check(guard, (48, 512, 512), (2.5, 0.7, 0.7), BitsAllocated=16, PhotometricInterpretation="MONOCHROME2")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SERVING_MAX_MODEL_VOXELS": "-1"}, "SERVING_MAX_MODEL_VOXELS must be an integer >= 1"),
        ({"SERVING_MAX_SPACING_MM": "nan"}, "SERVING_MAX_SPACING_MM must be a number > 0"),
        ({"SERVING_MIN_SPACING_MM": "5", "SERVING_MAX_SPACING_MM": "2"}, "SERVING_MIN_SPACING_MM (5.0) must be below"),
    ],
)
def test_invalid_limits_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        InputLimits.from_env(environ)


def test_limits_are_read_from_the_environment() -> None:
    environ = {"SERVING_MAX_JSON_DEPTH": "4", "SERVING_MIN_SPACING_MM": "0.2", "SERVING_MIN_SLICES": "8"}
    assert InputLimits.from_env(environ) == InputLimits(max_json_depth=4, min_spacing_mm=0.2, min_slices=8)
