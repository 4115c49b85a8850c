"""Give the memory a finished request freed back to the system.

glibc keeps freed heap pages (and its per-thread arenas) mapped for reuse: after one 300-slice request a
worker kept ~0.9 GiB of RSS it no longer used (issue 19), which on an instance running several workers is
memory the next request of another worker cannot have. ``malloc_trim(0)`` returns the free pages at the top of
every arena; where the C library is not glibc (musl, macOS) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

# mallopt's M_MMAP_THRESHOLD (malloc.h), and the size from which allocations get their own mapping.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 << 10


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)  # glibc only
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_memory() -> bool:
    """Return freed heap pages to the system; whether there was a glibc to ask."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def map_large_allocations() -> bool:
    """Give every allocation of 128 KiB or more its own mapping, returned to the system when freed.

    glibc starts there too, but raises the threshold to the size of each mapped block freed (up to 32 MiB): after
    the first request, a slice's 512 KiB of pixels and the resampling's tens of MiB of temporaries came from the
    heap, where freed blocks between live ones stay resident -- the 300-slice request's peak was a third free
    heap. Setting the threshold once fixes it (and stops the adjustment); once per process, at model load.
    Whether there was a glibc to ask."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)  # glibc only
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
