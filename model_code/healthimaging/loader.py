"""Load one series of a HealthImaging image set as an :class:`ImageSeries`.

The order of work, and why:

1. GetImageSetMetadata, choose the series, plan its frames (document.py).
2. Sort and validate the geometry from the headers alone (``stack_geometry``, the rules every loader
   shares), before any frame is fetched: a series that cannot form a volume fails fast, and each frame's
   slot in the volume is known up front.
3. Two stages (``fetch_frames``): fetch threads call GetImageFrame on the one shared, thread-safe
   botocore client (one pooled connection per thread) and queue the encoded frames; one decode thread per
   core decodes and verifies each frame (``htj2k_decode`` and the CRC release the GIL) and rescales it into
   its slot of the volume (volume.py: int16 for the usual CT, decoded straight into its slot; else float32).
4. Once every frame is in, the frames' DICOM datasets are built (what every frame shares is converted once,
   see headers.py), with the uncompressed pixel data (taken on the decode thread) unless the caller needs
   headers only.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar, cast

import numpy as np
from pydicom import DataElement

from model_code.core.dicom.series import ImageSeries, StackGeometry, stack_geometry
from model_code.core.errors import InvalidSeriesError
from model_code.healthimaging import client as service
from model_code.healthimaging.decode import decode_frame
from model_code.healthimaging.document import FramePlan, choose_series, plan_frames
from model_code.healthimaging.headers import SeriesHeaders
from model_code.healthimaging.volume import VolumeBuilder

logger = logging.getLogger(__name__)

T = TypeVar("T")
_PIXEL_DATA = 0x7FE00010
_PENDING = object()  # a frame's result slot before its decode thread fills it


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
    decoders: int | None = None,
    decode_target: Callable[[int], np.ndarray | None] | None = None,
) -> list[T]:
    """``on_frame(i, stored_values)`` for every planned frame, results in plan order.

    Two stages. Up to ``max_workers`` fetch threads call GetImageFrame on the shared client and queue the
    encoded frames; ``decoders`` threads (default: one per usable core) decode and verify them and call
    ``on_frame``. Fetching is network waits plus botocore's Python, decoding is native code outside the GIL,
    so the stages overlap; a fetch thread that also decoded would hold its connection idle meanwhile
    (measured 15-20% more frames/s than fetching and decoding in the same threads, docs/healthimaging.md).
    The queue holds encoded frames only, so it never outgrows the compressed series. The array ``on_frame``
    gets is the decoder's reusable buffer: copy what you keep. A failure stops both stages for the frames
    after it; the error raised is the earliest failed frame's in plan order.

    ``decode_target(i)``, when given, names the array frame ``i`` is decoded into (unsigned samples of the
    frame's shape and width, e.g. its slot of the volume) or None for the decoder's reusable buffer.
    """
    if not plans:
        return []
    run = _FrameRun(plans, on_frame, decode_target)
    fetchers = _fetch_workers(client, max_workers, len(plans))
    decoder_threads = [
        threading.Thread(target=run.decode_queued, args=(image_set_id,), name=f"ahi-decode-{n}", daemon=True)
        for n in range(_decoders(decoders, len(plans)))
    ]
    for thread in decoder_threads:
        thread.start()
    try:
        with ThreadPoolExecutor(fetchers, thread_name_prefix="ahi-fetch") as pool:
            futures = [pool.submit(run.fetch, client, datastore_id, image_set_id, index) for index in range(len(plans))]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException as error:  # KeyboardInterrupt: stop the stages before the pool drains its queue
                run.fail(error)
                raise
            if run.failed.is_set():
                for future in futures:
                    future.cancel()
    finally:
        for _ in decoder_threads:
            run.queue.put(None)
        for thread in decoder_threads:
            thread.join()
    return run.results()


class _FrameRun(Generic[T]):
    """The state the two stages of one :func:`fetch_frames` call share.

    When frames fail, the one raised is the failure of the earliest frame in plan order, whatever the
    threads' timing: after a failure at frame k no frame after k is fetched or decoded, but frames before
    k still are, since one of them may fail too and its error is the one to report.
    """

    def __init__(
        self,
        plans: Sequence[FramePlan],
        on_frame: Callable[[int, np.ndarray], T],
        decode_target: Callable[[int], np.ndarray | None] | None = None,
    ) -> None:
        self.plans = plans
        self.on_frame = on_frame
        self.decode_target = decode_target
        self.queue: queue.SimpleQueue[tuple[int, service.FrameBlob] | None] = queue.SimpleQueue()
        self.failed = threading.Event()
        self._failed_at = len(plans)  # index of the earliest failed frame; len(plans) while none has
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._results: list[Any] = [_PENDING] * len(plans)

    def fail(self, error: BaseException, index: int = -1) -> None:
        """Record a failure at frame ``index`` (-1: not a frame's, e.g. an interrupt: it always wins)."""
        with self._lock:
            if index < self._failed_at:
                self._failed_at, self._error = index, error
        self.failed.set()

    def _skip(self, index: int) -> bool:
        return self.failed.is_set() and index > self._failed_at

    def fetch(self, client: Any, datastore_id: str, image_set_id: str, index: int) -> None:
        if self._skip(index):
            return
        try:
            blob = service.get_image_frame(client, datastore_id, image_set_id, self.plans[index].frame_id)
        except BaseException as error:
            self.fail(error, index)
            raise
        self.queue.put((index, blob))

    def decode_queued(self, image_set_id: str) -> None:
        buffers: dict[tuple[int, int, int], np.ndarray] = {}  # this thread's decode targets, reused
        while (item := self.queue.get()) is not None:
            index, blob = item
            if self._skip(index):
                continue
            plan = self.plans[index]
            try:
                out = self.decode_target(index) if self.decode_target is not None else None
                if out is None:
                    fmt = plan.pixel_format
                    key = (fmt.rows, fmt.cols, fmt.dtype.itemsize)
                    if key not in buffers:
                        buffers[key] = np.empty(key[:2], dtype=f"u{key[2]}")
                    out = buffers[key]
                pixels = decode_frame(blob.data, blob.content_type, plan, image_set_id=image_set_id, out=out)
                self._results[index] = self.on_frame(index, pixels)
            except BaseException as error:  # anything, so no frame is left without a result or an error
                self.fail(error, index)

    def results(self) -> list[T]:
        if self._error is not None:
            raise self._error
        missing = [self.plans[i].frame_id for i, result in enumerate(self._results) if result is _PENDING]
        if missing:  # a decode thread died outside its per-frame guard: never hand back a partial series
            raise RuntimeError(f"frames {missing[:5]} produced neither a result nor an error")
        return cast(list[T], self._results)


def _decoders(decoders: int | None, frames: int) -> int:
    if decoders is not None and decoders < 1:
        raise ValueError(f"decoders must be >= 1, got {decoders}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(decoders or cores, frames))


def _fetch_workers(client: Any, max_workers: int | None, frames: int) -> int:
    if max_workers is not None and max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    wanted = max_workers or service.DEFAULT_MAX_WORKERS
    pool = service.pool_size(client)
    if wanted > pool:
        # More threads than pooled connections would open and drop a connection per call.
        logger.info("using %d fetch threads, the client's max_pool_connections (asked for %d)", pool, wanted)
    return max(1, min(wanted, pool, frames))


def _label(plan: FramePlan) -> str:
    return f"frame {plan.frame_id} ({plan.sop_instance_uid} #{plan.frame_number})"


def _geometry(plans: Sequence[FramePlan]) -> StackGeometry:
    """Slice order, affine and spacing from the frames' headers, by the rules ``series_from_datasets`` uses."""
    labels = [_label(plan) for plan in plans]
    return stack_geometry(len(plans), lambda index, keyword: plans[index].attributes.get(keyword), labels)


def _check_pixel_formats(plans: Sequence[FramePlan]) -> None:
    """Single-channel 8, 16 or 32-bit frames only, checked before any frame is fetched."""
    for plan in plans:
        fmt = plan.pixel_format
        if fmt.samples_per_pixel != 1 or fmt.bits_allocated not in (8, 16, 32):
            raise InvalidSeriesError(
                f"SamplesPerPixel {fmt.samples_per_pixel}, BitsAllocated {fmt.bits_allocated}: not a single-channel "
                "grayscale image (a SEG or colour series?); choose the image series with series_instance_uid",
                [_label(plan)],
            )


def load_image_set(
    client: Any,
    datastore_id: str,
    image_set_id: str,
    *,
    series_instance_uid: str | None = None,
    max_workers: int | None = None,
    pixel_data: bool = True,
) -> ImageSeries:
    """Fetch, verify and stack one series of an image set.

    The series is ``series_instance_uid`` when given, else the series with most frames (logged, with the
    others it passed over). Returns an :class:`ImageSeries`: volume (slices, rows, cols) with the modality
    rescale applied, ordered along the slice normal, int16 or float32 by the rule of ``series_from_datasets``
    (int16 for an exact integer rescale, the usual CT); ``datasets`` rebuilt from the metadata in the same
    order, with uncompressed pixel data unless ``pixel_data`` is False (headers only: what a server that
    segments the volume and writes a SEG needs, which spares a copy of the pixels); ``metadata`` the parsed
    metadata document.

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
    _check_pixel_formats(plans)
    volume = VolumeBuilder(plans, geometry.order, geometry.rows, geometry.cols)

    def place(index: int, pixels: np.ndarray) -> DataElement | None:
        # Runs on the decode thread that decoded the frame; the pixel data is taken before the rescale, since
        # ``pixels`` may be the frame's slot of the volume itself.
        element = pixel_data_element(pixels) if pixel_data else None
        volume.place(index, pixels)
        return element

    elements = fetch_frames(
        client, datastore_id, image_set_id, plans, place, max_workers=max_workers, decode_target=volume.decode_target
    )
    # The headers once the frames are in, on this thread alone: built on the decode threads, this Python work
    # held the GIL that those threads and the fetch threads hand back and forth at every native call, and cost
    # three to four times its own CPU time in throughput (docs/healthimaging.md).
    headers = SeriesHeaders(plans)
    datasets = []
    for index in geometry.order:
        dataset = headers.build(plans[index])
        element = elements[index]
        if element is not None:
            dataset[_PIXEL_DATA] = element
        datasets.append(dataset)
    return ImageSeries(
        volume=volume.volume(),
        affine=geometry.affine,
        spacing=geometry.spacing,
        datasets=datasets,
        metadata=document,
    )
