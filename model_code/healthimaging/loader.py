"""Load one series of a HealthImaging image set as an :class:`ImageSeries`.

Fetching and decoding overlap: a pool of fetch threads (sharing one botocore client, which is thread-safe)
hands each encoded frame to a pool of decode threads, one per core; ``htj2k_decode`` releases the GIL, so
decoding runs while other threads wait on the network. The main thread builds the DICOM headers meanwhile.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pydicom
from pydicom import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from model_code.healthimaging import client as service
from model_code.healthimaging.decode import decode_frame
from model_code.healthimaging.dicom_json import dataset_from_json
from model_code.healthimaging.document import FramePlan, choose_series, plan_frames
from model_code.imaging.series import ImageSeries, series_from_datasets

logger = logging.getLogger(__name__)

_PIXEL_DATA = 0x7FE00010


def build_dataset(plan: FramePlan, pixels: np.ndarray | None = None) -> pydicom.Dataset:
    """The single-frame instance of one frame: header from the document, uncompressed pixel data."""
    dataset = dataset_from_json(plan.attributes, plan.vrs, signed=plan.pixel_format.signed)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.get("SOPClassUID", "")
    meta.MediaStorageSOPInstanceUID = dataset.get("SOPInstanceUID", plan.sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.file_meta = meta
    if pixels is not None:
        attach_pixels(dataset, pixels)
    return dataset


def attach_pixels(dataset: pydicom.Dataset, pixels: np.ndarray) -> None:
    """Store decoded values as native little-endian pixel data (OB for 8-bit samples, OW otherwise)."""
    little = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False)
    vr = "OB" if little.dtype.itemsize == 1 else "OW"
    dataset[_PIXEL_DATA] = DataElement(_PIXEL_DATA, vr, little.tobytes())


def fetch_and_decode(
    client: Any,
    datastore_id: str,
    image_set_id: str,
    plans: Sequence[FramePlan],
    *,
    max_workers: int | None = None,
    decode_workers: int | None = None,
    while_waiting: Any = None,
) -> tuple[list[np.ndarray], Any]:
    """Stored values of every planned frame, in plan order, fetched and decoded concurrently.

    ``while_waiting`` (a callable) runs on the calling thread while frames are in flight; its result is
    returned alongside the pixels. The first failing frame cancels the frames not yet started and raises.
    """
    fetch_workers = _fetch_workers(client, max_workers, len(plans))
    decoders = decode_workers or os.cpu_count() or 1

    with (
        ThreadPoolExecutor(fetch_workers, thread_name_prefix="ahi-fetch") as fetch_pool,
        ThreadPoolExecutor(decoders, thread_name_prefix="ahi-decode") as decode_pool,
    ):

        def fetch(plan: FramePlan) -> Future[np.ndarray]:
            blob = service.get_image_frame(client, datastore_id, image_set_id, plan.frame_id)
            return decode_pool.submit(decode_frame, blob.data, blob.content_type, plan, image_set_id=image_set_id)

        fetches = [fetch_pool.submit(fetch, plan) for plan in plans]
        try:
            extra = while_waiting() if while_waiting is not None else None
            pixels = [future.result().result() for future in fetches]
        except BaseException:
            for future in fetches:
                future.cancel()
            raise
    return pixels, extra


def _fetch_workers(client: Any, max_workers: int | None, frames: int) -> int:
    if max_workers is not None and max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    wanted = max_workers or service.DEFAULT_MAX_WORKERS
    pool = service.pool_size(client)
    if wanted > pool:
        # More threads than pooled connections would open and drop a connection per call.
        logger.info("using %d fetch threads, the client's max_pool_connections (asked for %d)", pool, wanted)
    return max(1, min(wanted, pool, frames))


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

    ``max_workers`` bounds the concurrent GetImageFrame calls (default 32, never more than the client's
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

    def headers() -> list[pydicom.Dataset]:
        return [build_dataset(plan) for plan in plans]

    pixels, datasets = fetch_and_decode(
        client, datastore_id, image_set_id, plans, max_workers=max_workers, while_waiting=headers
    )
    for dataset, frame in zip(datasets, pixels, strict=True):
        attach_pixels(dataset, frame)
    return series_from_datasets(
        datasets,
        names=[f"frame {plan.frame_id} ({plan.sop_instance_uid} #{plan.frame_number})" for plan in plans],
        pixel_arrays=pixels,
        metadata=document,
    )
