"""release_memory: glibc's malloc_trim where the C library is glibc, nothing elsewhere."""

from __future__ import annotations

import platform

from model_code.core.memory import release_memory


def test_release_memory_calls_glibc_where_it_is_the_c_library() -> None:
    assert release_memory() is (platform.libc_ver()[0] == "glibc")
