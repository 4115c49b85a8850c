"""Load one series of a HealthImaging image set as an :class:`ImageSeries`.

The order of work, and why:

1. GetImageSetMetadata, choose the series, plan its frames (document.py).
2. Sort and validate the geometry from the headers alone, before any frame is fetched: a series that
   cannot form a volume fails fast, and each frame's slot in the volume is known up front.
3. Fetch frames in a thread pool (one shared, thread-safe botocore client; one pooled connection per
   thread); the thread that fetched a frame decodes, verifies and rescales it into its slot of the
   preallocated float32 volume. ``htj2k_decode``, the CRC and the numpy rescale release the GIL, so
   decoding overlaps other threads' fetches.
4. The same thread rebuilds the frame's DICOM header (attributes that repeat are converted once per series
   and shared as immutable raw elements, see dicom_json.ElementCache) and attaches the uncompressed pixel
   data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pydicom
from pydicom import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from model_code.healthimaging import client as service
from model_code.healthimaging.decode import decode_frame
from model_code.healthimaging.dicom_json import ElementCache, dataset_from_json
from model_code.healthimaging.document import FramePlan, choose_series, plan_frames
from model_code.imaging.errors import InvalidSeriesError
from model_code.imaging.series import ImageSeries, series_from_datasets

logger = logging.getLogger(__name__)

T = TypeVar("T")
_PIXEL_DATA = 0x7FE00010
# What series_from_datasets reads to sort and place slices; the stand-ins in _geometry carry only these.
_GEOMETRY_KEYWORDS = (
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
)
_ONE_PIXEL = np.zeros((1, 1), dtype=np.uint8)


def build_dataset(plan: FramePlan, *, cache: ElementCache | None = None) -> pydicom.Dataset:
    """The single-frame instance of one frame, header only: attributes from the document, file meta set."""
    dataset = dataset_from_json(plan.attributes, plan.vrs, signed=plan.pixel_format.signed, cache=cache)
    meta = FileMetaDataset()
    # Read from the document, not the dataset: a shared attribute converts on first access (dicom_json.py).
    meta.MediaStorageSOPClassUID = UID(str(plan.attributes.get("SOPClassUID") or ""))
    meta.MediaStorageSOPInstanceUID = UID(str(plan.attributes.get("SOPInstanceUID") or plan.sop_instance_uid))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.file_meta = meta
    return dataset


def pixel_data_element(pixels: np.ndarray) -> DataElement:
    """Native little-endian pixel data: OB for 8-bit samples, OW otherwise."""
    little = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    return DataElement(_PIXEL_DATA, "OB" if little.dtype.itemsize == 1 else "OW", little.tobytes())


def fetch_frames(
    client: Any,
    datastore_id: str,
    image_set_id: str,
    plans: Sequence[FramePlan],
    on_frame: Callable[[int, np.ndarray], T],
    *,
    max_workers: int | None = None,
) -> list[T]:
    """``on_frame(i, stored_values)`` for every planned frame, results in plan order.

    Each of up to ``max_workers`` threads fetches a frame, decodes and verifies it, and calls ``on_frame``.
    The array ``on_frame`` gets is the thread's reusable decode buffer: copy what you keep. The first
    failure cancels the frames not yet started and is raised.
    Decoding in the fetching thread, rather than handing frames to a decode pool, saves a thread hand-off
    (and a GIL hand-off) per frame; the OS spreads the GIL-free decodes over the cores.
    """
    workers = _fetch_workers(client, max_workers, len(plans))
    scratch = threading.local()

    def fetch(index: int) -> T:
        plan = plans[index]
        blob = service.get_image_frame(client, datastore_id, image_set_id, plan.frame_id)
        fmt = plan.pixel_format
        key = (fmt.rows, fmt.cols, fmt.dtype.itemsize)
        buffers = scratch.__dict__.setdefault("buffers", {})
        if key not in buffers:
            buffers[key] = np.empty(key[:2], dtype=f"u{key[2]}")
        pixels = decode_frame(blob.data, blob.content_type, plan, image_set_id=image_set_id, out=buffers[key])
        return on_frame(index, pixels)

    with ThreadPoolExecutor(workers, thread_name_prefix="ahi-fetch") as pool:
        futures = [pool.submit(fetch, index) for index in range(len(plans))]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _fetch_workers(client: Any, max_workers: int | None, frames: int) -> int:
    if max_workers is not None and max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    wanted = max_workers or service.DEFAULT_MAX_WORKERS
    pool = service.pool_size(client)
    if wanted > pool:
        # More threads than pooled connections would open and drop a connection per call.
        logger.info("using %d fetch threads, the client's max_pool_connections (asked for %d)", pool, wanted)
    return max(1, min(wanted, pool, frames))


@dataclass(frozen=True)
class _Geometry:
    order: list[int]  # order[slot] = plan index of the frame stacked at that slot
    affine: np.ndarray
    spacing: tuple[float, float, float]


def _label(plan: FramePlan) -> str:
    return f"frame {plan.frame_id} ({plan.sop_instance_uid} #{plan.frame_number})"


def _geometry(plans: Sequence[FramePlan]) -> _Geometry:
    """Slice order, affine and spacing from the headers, by the shared rules of ``series_from_datasets``.

    It runs on stand-in datasets that carry only the geometry attributes and 1x1 pixels, so the sorting and
    every geometry check are the shared code's, at no pixel cost. Image size is checked here because the
    stand-ins do not carry it.
    """
    first = plans[0].pixel_format
    for plan in plans:
        if (plan.pixel_format.rows, plan.pixel_format.cols) != (first.rows, first.cols):
            raise InvalidSeriesError(
                f"image size {plan.pixel_format.rows}x{plan.pixel_format.cols} differs from "
                f"{first.rows}x{first.cols} of {_label(plans[0])}",
                [_label(plan)],
            )
    cache = ElementCache(share_encoded=False)  # the stand-ins are read in full at once: plain copies are cheaper
    stand_ins = []
    for plan in plans:
        attributes = {key: plan.attributes[key] for key in _GEOMETRY_KEYWORDS if key in plan.attributes}
        stand_in = dataset_from_json({**attributes, "Rows": 1, "Columns": 1}, cache=cache)
        stand_ins.append(stand_in)
    placed = series_from_datasets(
        stand_ins, names=[_label(plan) for plan in plans], pixel_arrays=[_ONE_PIXEL] * len(plans)
    )
    index_of = {id(stand_in): index for index, stand_in in enumerate(stand_ins)}
    return _Geometry([index_of[id(ds)] for ds in placed.datasets], placed.affine, placed.spacing)


def _rescale(attributes: dict[str, Any]) -> tuple[np.float32, np.float32]:
    # The same defaults and float32 arithmetic as series_from_datasets, so volumes match bit for bit.
    slope = float(attributes.get("RescaleSlope") or 1.0)
    intercept = float(attributes.get("RescaleIntercept") or 0.0)
    return np.float32(slope), np.float32(intercept)


def load_image_set(
    client: Any,
    datastore_id: str,
    image_set_id: str,
    *,
    series_instance_uid: str | None = None,
    max_workers: int | None = None,
) -> ImageSeries:
    """Fetch, verify and stack one series of an image set.

    The series is ``series_instance_uid`` when given, else the series with most frames (logged, with the
    others it passed over). Returns an :class:`ImageSeries`: volume (slices, rows, cols) float32 with the
    modality rescale applied, ordered along the slice normal; ``datasets`` rebuilt from the metadata with
    uncompressed pixel data in the same order; ``metadata`` the parsed metadata document.

    ``max_workers`` bounds the concurrent GetImageFrame calls (default 16, never more than the client's
    ``max_pool_connections``; build the client with :func:`model_code.healthimaging.client.make_client`).
    Raises :class:`ImageSetNotFound`, :class:`SeriesNotFound`, :class:`FrameIntegrityError`, or
    :class:`InvalidSeriesError` when the frames do not form one volume.
    """
    document = service.get_image_set_metadata(client, datastore_id, image_set_id)
    choice = choose_series(document, series_instance_uid)
    logger.info(
        "image set %s: loading series %s (%d frames), %s",
        image_set_id,
        choice.series_instance_uid,
        choice.frame_count,
        choice.reason,
    )
    plans = plan_frames(document, choice.series_instance_uid)
    geometry = _geometry(plans)
    slot_of = {index: slot for slot, index in enumerate(geometry.order)}
    fmt = plans[0].pixel_format
    volume = np.empty((len(plans), fmt.rows, fmt.cols), dtype=np.float32)

    cache = ElementCache()

    def place(index: int, pixels: np.ndarray) -> pydicom.Dataset:
        # Runs on the fetch thread that decoded the frame: the rescale releases the GIL, and building the
        # header here spreads that work over the load instead of leaving it to a starved main thread.
        slope, intercept = _rescale(plans[index].attributes)
        out = volume[slot_of[index]]
        # Cast first, then work float32 in place: the same values as a casting ufunc (which converts
        # float32(x) too), at under half the time, since a casting ufunc goes through small buffers.
        out[...] = pixels
        if slope != 1:  # float32(x) * 1 is exactly float32(x): skip the pass
            np.multiply(out, slope, out=out)
        np.add(out, intercept, out=out)
        dataset = build_dataset(plans[index], cache=cache)
        dataset[_PIXEL_DATA] = pixel_data_element(pixels)
        return dataset

    datasets = fetch_frames(client, datastore_id, image_set_id, plans, place, max_workers=max_workers)
    return ImageSeries(
        volume=volume,
        affine=geometry.affine,
        spacing=geometry.spacing,
        datasets=[datasets[index] for index in geometry.order],
        metadata=document,
    )
