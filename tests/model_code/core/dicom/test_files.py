"""load_series: folders and zips into ImageSeries; every bad input names its file and the reason."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from model_code.core.dicom.files import load_series
from model_code.core.dicom.series import fits_int16
from model_code.core.errors import InvalidSeriesError
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom

SLICES = 5


def _write(folder: Path, *, series_uid: str | None = None, descending: bool = False, shuffle: bool = False) -> list[Path]:
    phantom = make_phantom(shape=(SLICES, 12, 10), spacing=(2.0, 1.0, 1.0), descending=descending)
    return write_dicom_series(phantom.volume_hu, phantom.affine, folder, series_uid=series_uid, shuffle_names=shuffle)


def _zip(folder: Path, archive: Path, *, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.iterdir()):
            zipped.write(path, prefix + path.name)
    return archive


def _edit(path: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    dataset = pydicom.dcmread(path)
    change(dataset)
    dataset.save_as(path)


# ---- inputs that load -------------------------------------------------------------------------------


def test_folder_loads_sorted_with_rescale(tmp_path):
    paths = _write(tmp_path / "series", descending=True, shuffle=True)
    series = load_series(tmp_path / "series")
    assert series.volume.shape == (SLICES, 12, 10)
    assert np.all(np.diff(series.slice_positions[:, 2]) > 0)  # ascending along the normal (S)
    assert series.volume.min() < -900  # HU, not stored values
    assert {ds.SOPInstanceUID for ds in series.datasets} == {pydicom.dcmread(p).SOPInstanceUID for p in paths}


def test_nested_folder_and_export_clutter_are_fine(tmp_path):
    _write(tmp_path / "study" / "series")
    (tmp_path / "study" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "study" / "DICOMDIR").write_bytes(b"not read")
    assert load_series(tmp_path / "study").volume.shape[0] == SLICES


@pytest.mark.parametrize(
    "prefix",
    [
        "",  # files at the archive root
        "export/CT/",  # files in folders inside the archive
    ],
)
def test_zip_loads(tmp_path, prefix):
    _write(tmp_path / "series")
    archive = _zip(tmp_path / "series", tmp_path / "series.zip", prefix=prefix)
    with zipfile.ZipFile(archive, "a") as zipped:
        zipped.writestr("__MACOSX/._slice_0000.dcm", b"resource fork")
    series = load_series(archive)
    assert series.volume.shape == (SLICES, 12, 10)
    assert series.metadata["source"] == str(archive)


def test_series_uid_chooses_among_several(tmp_path):
    _write(tmp_path / "mixed", series_uid="1.2.3.1")
    more = _write(tmp_path / "other", series_uid="1.2.3.2")
    for index, path in enumerate(more):
        path.rename(tmp_path / "mixed" / f"second_{index}.dcm")
    series = load_series(tmp_path / "mixed", series_instance_uid="1.2.3.2")
    assert series.series_instance_uid == "1.2.3.2"
    assert len(series.datasets) == SLICES


def _other_series(path: Path, target: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    dataset = pydicom.dcmread(path)
    dataset.SeriesInstanceUID = pydicom.uid.generate_uid()
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    change(dataset)
    dataset.save_as(target)


@pytest.mark.parametrize(
    "change",
    [
        lambda ds: delattr(ds, "PixelData"),  # a report or presentation state: no pixels
        lambda ds: setattr(ds, "NumberOfFrames", 3),  # a multi-frame object such as an earlier SEG
    ],
    ids=["no-pixels", "multi-frame"],
)
def test_non_image_series_beside_the_images_are_passed_over(tmp_path, change):
    paths = _write(tmp_path / "export")
    _other_series(paths[0], tmp_path / "export" / "other.dcm", change)
    series = load_series(tmp_path / "export")
    assert series.series_instance_uid == pydicom.dcmread(paths[0]).SeriesInstanceUID
    assert len(series.datasets) == SLICES


# ---- bad input --------------------------------------------------------------------------------------


def _not_dicom(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    (folder / "notes.txt").write_text("scan notes")
    return folder, "notes.txt"


def _two_series(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    for index, path in enumerate(_write(folder.parent / "second", series_uid="1.2.3.99")):
        path.rename(folder / f"second_{index}.dcm")
    return folder, "second_0.dcm"


def _two_series_wrong_choice(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    _two_series(folder, paths)
    return folder, folder.name  # no file holds the missing series: the input path is named


def _missing_pixel_data(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    _edit(paths[2], lambda ds: delattr(ds, "PixelData"))
    return folder, paths[2].name


def _missing_slice(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    paths[2].unlink()  # the gap between slices 1 and 3 is twice the others
    return folder, paths[1].name


def _tilted_slice(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    _edit(paths[3], lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0.8, -0.6]))
    return folder, paths[3].name


def _other_pixel_spacing(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    _edit(paths[4], lambda ds: setattr(ds, "PixelSpacing", [0.5, 0.5]))
    return folder, paths[4].name


def _duplicate_position(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    position = pydicom.dcmread(paths[0]).ImagePositionPatient
    _edit(paths[1], lambda ds: setattr(ds, "ImagePositionPatient", position))
    return folder, paths[1].name


def _multi_frame(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    _edit(paths[0], lambda ds: setattr(ds, "NumberOfFrames", 2))
    return folder, paths[0].name


def _no_series_uid(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    _edit(paths[0], lambda ds: delattr(ds, "SeriesInstanceUID"))
    return folder, paths[0].name


def _empty_folder(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    empty = folder.parent / "empty"
    empty.mkdir()
    return empty, "empty"


def _missing_path(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    return folder.parent / "nowhere", "nowhere"


def _single_file(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    return paths[0], paths[0].name


def _zip_with_junk(folder: Path, paths: list[Path]) -> tuple[Path, str]:
    archive = _zip(folder, folder.parent / "upload.zip")
    with zipfile.ZipFile(archive, "a") as zipped:
        zipped.writestr("report.pdf", b"%PDF-1.4 not an image")
    return archive, "upload.zip:report.pdf"


BAD_INPUTS = [
    # (how the input is broken, message fragment, series_instance_uid)
    (_not_dicom, "not DICOM", None),
    (_two_series, "2 series found with images", None),
    (_missing_pixel_data, "no pixel data", None),
    (_missing_slice, "slice spacing is inconsistent", None),
    (_tilted_slice, "ImageOrientationPatient", None),
    (_other_pixel_spacing, "PixelSpacing", None),
    (_duplicate_position, "same slice position", None),
    (_multi_frame, "multi-frame", None),
    (_no_series_uid, "SeriesInstanceUID is missing", None),
    (_empty_folder, "no files found", None),
    (_missing_path, "does not exist", None),
    (_single_file, "single file", None),
    (_zip_with_junk, "not DICOM", None),
    (_two_series_wrong_choice, "is not in", "9.9.9"),  # a choice that is not there lists what is
]


@pytest.mark.parametrize(("breaker", "message", "uid"), BAD_INPUTS, ids=[case[0].__name__ for case in BAD_INPUTS])
def test_bad_input_names_the_file_and_the_reason(tmp_path, breaker, message, uid):
    folder = tmp_path / "series"
    paths = _write(folder)
    target, named = breaker(folder, paths)
    with pytest.raises(InvalidSeriesError, match=message) as raised:
        load_series(target, series_instance_uid=uid)
    assert any(named in name for name in raised.value.files), raised.value.files
    assert named in str(raised.value)


@pytest.mark.parametrize(
    ("slope", "intercept", "descending"),
    [
        (1.0, -1024.0, False),  # the usual CT rescale
        (0.5, -1000.5, True),  # a fractional slope, slices stored head to feet
        (1.0, 0.0, False),  # no rescale
    ],
)
def test_preallocated_decode_equals_the_stacked_volume(tmp_path: Path, slope: float, intercept: float,
                                                       descending: bool) -> None:
    paths = _write(tmp_path / "series", descending=descending)
    def rescale(ds: pydicom.Dataset) -> None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept

    for path in paths:
        _edit(path, rescale)
    archive = _zip(tmp_path / "series", tmp_path / "series.zip")
    series = load_series(archive)
    # The volume as the loader built it before issue 19: every slice decoded, cast, rescaled, then stacked.
    by_uid = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p) for p in paths)}
    ordered = [by_uid[str(ds.SOPInstanceUID)] for ds in series.datasets]
    expected = np.stack([ds.pixel_array.astype(np.float32) * np.float32(slope) + np.float32(intercept)
                         for ds in ordered])
    # An integer shift keeps the stored integers' type (int16: exactly the float32 HU); a fractional slope cannot.
    assert series.volume.dtype == (np.int16 if slope == 1 and float(intercept).is_integer() else np.float32)
    np.testing.assert_array_equal(series.volume.astype(np.float32), expected)
    # The volume holds the pixels: the instances kept for the SEG carry headers only.
    assert all("PixelData" not in ds for ds in series.datasets)
    assert all("SOPInstanceUID" in ds and "ImagePositionPatient" in ds for ds in series.datasets)


@pytest.mark.parametrize("shifted", [0, SLICES - 1])
def test_a_slice_beyond_int16_promotes_the_volume_to_float32(tmp_path: Path, shifted: int) -> None:
    # An integer rescale whose HU leave int16's range (first or last slice decoded): float32, the values exact.
    paths = _write(tmp_path / "series")
    target = str(load_series(tmp_path / "series").datasets[shifted].SOPInstanceUID)

    def far(ds: pydicom.Dataset) -> None:
        if str(ds.SOPInstanceUID) == target:
            ds.RescaleIntercept = 32000

    for path in paths:
        _edit(path, far)
    series = load_series(tmp_path / "series")
    assert series.volume.dtype == np.float32
    by_uid = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p) for p in paths)}
    ordered = [by_uid[str(ds.SOPInstanceUID)] for ds in series.datasets]
    expected = np.stack([ds.pixel_array.astype(np.float32) * np.float32(ds.RescaleSlope)
                         + np.float32(ds.RescaleIntercept) for ds in ordered])
    assert expected[shifted].max() > np.iinfo(np.int16).max  # the far slice really leaves int16
    np.testing.assert_array_equal(series.volume, expected)


def test_pixel_data_is_kept_when_asked(tmp_path: Path) -> None:
    from model_code.core.dicom.series import series_from_datasets

    datasets = [pydicom.dcmread(path) for path in _write(tmp_path)]
    series = series_from_datasets(datasets, drop_pixel_data=False)
    assert all("PixelData" in ds for ds in series.datasets)
    np.testing.assert_array_equal(series.volume, series_from_datasets([pydicom.dcmread(p) for p in
                                                                       _write(tmp_path / "again")]).volume)


@pytest.mark.parametrize(
    ("values", "intercept", "value_range", "fits"),
    [
        ([0, 4095], -1024, None, True),
        ([0, 40000], -1024, None, False),  # 38976 is beyond int16: read from the pixels
        ([-32768, 100], -1024, None, False),  # -33792 is below it
        ([-32768, 100], -1024, (-32768, 32767), False),  # the sample width's bounds guarantee nothing: read
        ([-4096, 4095], -1024, (-4096, 4095), True),  # 13-bit signed: inside int16 whatever the pixels
        ([0, 40000], -1024, (0, 65535), False),  # the low side is guaranteed, the high side is read
    ],
)
def test_fits_int16_reads_only_the_sides_the_header_leaves_open(values, intercept, value_range, fits) -> None:
    stored = np.array(values, dtype=np.int32)
    assert fits_int16(stored, intercept, value_range=value_range) is fits
