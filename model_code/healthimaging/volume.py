"""The volume ``load_image_set`` fills, frame by frame, from the decode threads.

Same values and dtype as ``series_from_datasets`` (model_code/core/dicom/series.py) gives the same frames:
int16 when every frame's rescale is an exact integer shift (slope 1, integral intercept: the usual CT) and the
shifted values fit int16, else float32 with the modality rescale applied. For a 16-bit series going to an int16
volume the decoder writes each frame straight into its slot (:meth:`VolumeBuilder.decode_target`), and the
shift is one in-place pass: no per-thread buffer, no copy, half the fresh pages of a float32 slice.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Sequence

import numpy as np

from model_code.core.dicom.series import fits_int16, is_integer_shift, rescale_of
from model_code.healthimaging.document import FramePlan, PixelFormat

_INT16 = np.iinfo(np.int16)


def empty_volume(shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """An uninitialised volume in fresh anonymous memory, mapped a page at a time as frames land.

    Not ``np.empty``: numpy asks for transparent huge pages on large arrays, and on the virtual machines
    this project builds on, faulting those in cost about three times as much as plain 4 KiB pages, more
    than decoding the frame (see docs/healthimaging.md). The decode threads touch the pages as they write
    their frames: in parallel, outside the GIL.
    """
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size == 0:
        return np.empty(shape, dtype=dtype)
    # Private: a shared anonymous map is shared memory, whose page faults cost more again.
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype=dtype).reshape(shape)


def _value_range(fmt: PixelFormat) -> tuple[int, int]:
    """The stored values a frame of this format can hold once decoded: signed values are sign-extended from
    BitsStored (decode.py), unsigned ones are not masked, so only the sample width bounds them."""
    if fmt.signed and 0 < fmt.bits_stored < fmt.bits_allocated:
        return -(1 << (fmt.bits_stored - 1)), (1 << (fmt.bits_stored - 1)) - 1
    info = np.iinfo(fmt.dtype)
    return int(info.min), int(info.max)


def _wrapped_int16(value: int) -> np.int16:
    """``value`` modulo 2**16 as an int16: adding it with int16's wrap-around adds ``value`` exactly wherever
    the true sum is an int16 (the caller checks that first)."""
    return np.int16(((value - _INT16.min) % 2**16) + _INT16.min)


class VolumeBuilder:
    """Places each frame's stored values into its slot of the series' volume (called from decode threads).

    ``order[slot]`` is the plan index of the frame in that slot (the geometry's slice order). A frame whose
    shifted values leave int16's range is kept aside as stored values, and :meth:`volume` then returns the
    float32 volume instead (exactly the same numbers): the rare series that needs it pays for it, once.
    """

    def __init__(self, plans: Sequence[FramePlan], order: Sequence[int], rows: int, cols: int) -> None:
        self._plans = plans
        self._slot_of = {index: slot for slot, index in enumerate(order)}
        self._rescales = [rescale_of(plan.attributes.get) for plan in plans]
        dtype = np.int16 if is_integer_shift(self._rescales) else np.float32
        self._volume = empty_volume((len(plans), rows, cols), dtype)
        self._out_of_range: dict[int, np.ndarray] = {}  # plan index -> stored values (int16 volume only)
        self._lock = threading.Lock()

    @property
    def dtype(self) -> np.dtype:
        return self._volume.dtype

    def decode_target(self, index: int) -> np.ndarray | None:
        """Where frame ``index`` may be decoded: its int16 slot (as unsigned samples) for a 16-bit frame going
        to an int16 volume, else None (the decoder's own buffer; :meth:`place` converts from there)."""
        if self._volume.dtype != np.int16 or self._plans[index].pixel_format.dtype.itemsize != 2:
            return None
        return self._volume[self._slot_of[index]].view(np.uint16)

    def place(self, index: int, stored: np.ndarray) -> None:
        """Rescale frame ``index``'s stored values into its slot; ``stored`` may be that slot itself."""
        slope, intercept = self._rescales[index]
        out = self._volume[self._slot_of[index]]
        if out.dtype == np.float32:
            # Cast first, then work float32 in place: the same values as a casting ufunc (which converts
            # float32(x) too), at under half the time, since a casting ufunc goes through small buffers.
            out[...] = stored
            if slope != 1:  # float32(x) * 1 is exactly float32(x): skip the pass
                np.multiply(out, slope, out=out)
            np.add(out, intercept, out=out)
            return
        shift = int(intercept)
        # What the header allows is checked first: a signed CT frame of 12-15 bits cannot leave int16 with the
        # usual intercepts, so its min and max (a pass each, and a GIL round trip) are never computed.
        if not fits_int16(stored, shift, value_range=_value_range(self._plans[index].pixel_format)):
            with self._lock:
                self._out_of_range[index] = stored.copy()
            return
        if stored.dtype.itemsize == 2:
            if shift == 0 and np.may_share_memory(stored, out):
                return  # decoded into this slot, nothing to add (a signed series stored in HU)
            # In int16 arithmetic, in place (stored may be this very slot): wraps to the exact sum, checked above.
            np.add(stored.view(np.int16), _wrapped_int16(shift), out=out)
        else:
            np.add(stored, shift, out=out, dtype=np.int64, casting="unsafe")

    def volume(self) -> np.ndarray:
        """The filled volume: int16, or float32 when a frame's values left int16's range."""
        if not self._out_of_range:
            return self._volume
        promoted = self._volume.astype(np.float32)
        for index, stored in self._out_of_range.items():
            slope, intercept = self._rescales[index]
            out = promoted[self._slot_of[index]]
            np.multiply(stored, slope, out=out, dtype=np.float32)  # the float32 arithmetic of the float path
            out += intercept
        return promoted
