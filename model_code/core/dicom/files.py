"""Load one DICOM series from a folder or a .zip into an :class:`ImageSeries`.

The same type the HealthImaging connector returns: slices sorted along the slice normal, rescale
applied. Every failure is an :class:`InvalidSeriesError` that names the file(s) and says what to do.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from model_code.core.dicom.series import ImageSeries, StackGeometry, series_from_datasets
from model_code.core.errors import InvalidSeriesError
from model_code.core.limits import unsafe_member_name

# Files that sit beside a series in real exports and are not instances of it.
_IGNORED_NAMES = {"DICOMDIR", "Thumbs.db"}


def _ignored(name: str) -> bool:
    parts = Path(name).parts
    # Hidden files (.DS_Store) and macOS zip resource forks (__MACOSX/) carry no DICOM.
    return any(part.startswith(".") or part == "__MACOSX" for part in parts) or Path(name).name in _IGNORED_NAMES


def _iter_folder(folder: Path) -> Iterator[tuple[str, bytes | Path]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not _ignored(str(path.relative_to(folder))):
            yield str(path), path


def _iter_zip(archive: Path) -> Iterator[tuple[str, bytes | Path]]:
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = sorted(zipped.infolist(), key=lambda i: i.filename)
            # ".." starts with "." and would pass for a hidden file: refuse such names rather than drop them.
            unsafe = [info.filename for info in members if unsafe_member_name(info.filename)]
            if unsafe:
                raise InvalidSeriesError(
                    "zip member names are absolute or climb out of the archive with '..': zip the series folder "
                    "with relative names",
                    unsafe,
                )
            for info in members:
                if not info.is_dir() and not _ignored(info.filename):
                    # Members are read into memory, never extracted: no path from the archive touches disk.
                    yield f"{archive.name}:{info.filename}", zipped.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise InvalidSeriesError(f"the archive cannot be read ({error}): send a valid .zip", [archive.name]) from error


def _starts_like_a_dataset(data: bytes) -> bool:
    """A preamble-less instance starts with a file meta (0002) or identifying (0008) group tag, little endian.

    Anything else read with ``force=True`` parses as elements all the same: 256 MB of zeros became millions of
    empty (0000,0000) elements and held a worker for a minute.
    """
    return data[:2] in (b"\x02\x00", b"\x08\x00")


def _convert_every_element(dataset: pydicom.Dataset) -> None:
    """pydicom converts an element's bytes when it is first read; read them all here, so a malformed value fails
    now, as "not DICOM", and never later inside the geometry or pixel code."""
    for element in dataset.iterall():
        _ = element.value
    for element in dataset.file_meta.iterall() if hasattr(dataset, "file_meta") else ():
        _ = element.value


def _read(source: bytes | Path) -> pydicom.Dataset:
    if isinstance(source, bytes):
        stream = io.BytesIO(source)
        # pydicom keeps the stream it read as the dataset's ``buffer``: with it, every instance held its whole
        # member's bytes (the pixels a second time) until the request ended. Every value is read by now.
        with contextlib.closing(stream):
            return _read_stream(stream)
    return _read_stream(source)


def _read_stream(stream: io.BytesIO | Path) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(stream)
    except InvalidDicomError:
        # Some exporters omit the Part-10 preamble; accept those only if they look like an instance.
        if isinstance(stream, io.BytesIO):
            if not _starts_like_a_dataset(stream.getvalue()):
                raise
            stream.seek(0)
        dataset = pydicom.dcmread(stream, force=True)
        if "SOPClassUID" not in dataset or "SOPInstanceUID" not in dataset:
            raise
        return dataset


def _read_all(path: Path) -> tuple[list[pydicom.Dataset], list[str]]:
    # One member at a time: each is parsed and its bytes let go before the next is read, so the members' bytes
    # and the parsed instances are never all in memory together.
    members: Iterator[tuple[str, bytes | Path]]
    if path.is_dir():
        members = _iter_folder(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        members = _iter_zip(path)
    elif path.is_file():
        raise InvalidSeriesError("expected a folder of DICOM files or a .zip of them, got a single file", [str(path)])
    else:
        raise InvalidSeriesError("the path does not exist: pass a folder or a .zip of one DICOM series", [str(path)])
    datasets: list[pydicom.Dataset] = []
    names: list[str] = []
    not_dicom: list[str] = []
    for name, source in members:
        try:
            dataset = _read(source)
            _convert_every_element(dataset)
        # pydicom raises a dozen types for malformed bytes (unknown VRs are NotImplementedError, bad lengths
        # struct.error, bad values ValueError/TypeError): each means this file is not a readable instance.
        except Exception:
            not_dicom.append(name)
            continue
        finally:
            del source
        datasets.append(dataset)
        names.append(name)
    if not datasets and not not_dicom:
        raise InvalidSeriesError("no files found: the folder or archive holds no DICOM series", [str(path)])
    if not_dicom:
        raise InvalidSeriesError(
            f"{len(not_dicom)} file(s) are not DICOM: remove them or point at a folder that holds only the series",
            not_dicom,
        )
    return datasets, names


def _describe(uid: str, datasets: list[pydicom.Dataset]) -> str:
    first = datasets[0]
    modality = getattr(first, "Modality", "?")
    description = getattr(first, "SeriesDescription", "")
    return f"{uid} ({modality}, {len(datasets)} instances{', ' + repr(str(description)) if description else ''})"


def _is_slice(dataset: pydicom.Dataset) -> bool:
    """An image instance that can be a slice: pixel data, one frame, a position in space."""
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    return "PixelData" in dataset and frames == 1 and "ImagePositionPatient" in dataset


def load_series(
    path: Path,
    *,
    series_instance_uid: str | None = None,
    check: Callable[[StackGeometry, pydicom.Dataset], None] | None = None,
) -> ImageSeries:
    """Read every file under ``path`` (a folder, searched recursively, or a .zip) as one series.

    With several image series present, ``series_instance_uid`` chooses one; without it that is an
    error listing the series found. Series with no single-frame image (SR, presentation states, SEG)
    are passed over unless chosen. Hidden files, ``DICOMDIR`` and ``__MACOSX/`` entries are skipped; zip
    members with absolute or ``..`` names are refused. ``check`` sees the geometry before pixels are decoded.
    """
    path = Path(path)
    datasets, names = _read_all(path)

    by_series: dict[str, list[int]] = defaultdict(list)
    for index, dataset in enumerate(datasets):
        uid = str(getattr(dataset, "SeriesInstanceUID", ""))
        if not uid:
            raise InvalidSeriesError(
                "SeriesInstanceUID is missing: the file is not an instance of a series", [names[index]]
            )
        by_series[uid].append(index)

    if series_instance_uid is not None:
        if series_instance_uid not in by_series:
            found = "; ".join(_describe(u, [datasets[i] for i in ix]) for u, ix in by_series.items())
            raise InvalidSeriesError(
                f"series {series_instance_uid} is not in {path}: it holds {found}", [str(path)]
            )
        chosen = by_series[series_instance_uid]
    else:
        # Exports carry reports, presentation states or earlier SEGs beside the images: without a
        # choice, only series of single-frame images are candidates.
        images = {u: ix for u, ix in by_series.items() if any(_is_slice(datasets[i]) for i in ix)} or by_series
        if len(images) > 1:
            found = "; ".join(_describe(u, [datasets[i] for i in ix]) for u, ix in images.items())
            raise InvalidSeriesError(
                f"{len(images)} series found with images ({found}): choose one with series_instance_uid "
                "(--series-uid)",
                [names[ix[0]] for ix in images.values()],
            )
        chosen = next(iter(images.values()))

    chosen_datasets = [datasets[i] for i in chosen]
    chosen_names = [names[i] for i in chosen]
    for dataset, name in zip(chosen_datasets, chosen_names, strict=True):
        frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
        if frames > 1:
            raise InvalidSeriesError(
                f"the instance is multi-frame ({frames} frames): only single-frame series are supported; "
                "convert it to single-frame instances first",
                [name],
            )
    return series_from_datasets(chosen_datasets, names=chosen_names, metadata={"source": str(path)}, check=check)
