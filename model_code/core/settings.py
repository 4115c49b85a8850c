"""What every model server reads from its environment (SageMaker and Triton images): names as constants,
parsed once into a frozen object. The SageMaker runtime adds its endpoints (``model_code.serving.settings``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# "cpu", "cuda", "cuda:1"; unset: CUDA when present.
SERVING_DEVICE = "SERVING_DEVICE"
SERVING_SW_BATCH_SIZE = "SERVING_SW_BATCH_SIZE"
# Bound on the bytes a zip request's members declare (a zip bomb is refused before anything is decompressed).
SERVING_MAX_EXPANDED_BYTES = "SERVING_MAX_EXPANDED_BYTES"
# A 48x512x512 CT series is ~25 MB; 4 GiB leaves room for the largest single series and none for a bomb.
DEFAULT_MAX_EXPANDED_BYTES = 4 << 30


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value of ``name``; unset and blank are both None."""
    value = env.get(name, "").strip()
    return value or None


def positive_int(env: Mapping[str, str], name: str, unit: str = "") -> int | None:
    """An integer >= 1 from ``name``, None when unset; anything else raises ValueError naming the variable."""
    value = env_value(env, name)
    if value is not None and (not value.isdigit() or int(value) < 1):
        raise ValueError(f"{name} must be an integer >= 1{f' ({unit})' if unit else ''}, got {value!r}")
    return int(value) if value is not None else None


@dataclass(frozen=True)
class ServerSettings:
    device: str | None = None
    sw_batch_size: int | None = None
    max_expanded_bytes: int = DEFAULT_MAX_EXPANDED_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Read every setting once; an invalid value raises ValueError naming the variable, at model load."""
        env = os.environ if environ is None else environ
        max_expanded = positive_int(env, SERVING_MAX_EXPANDED_BYTES, "bytes")
        return ServerSettings(
            device=env_value(env, SERVING_DEVICE),
            sw_batch_size=positive_int(env, SERVING_SW_BATCH_SIZE),
            max_expanded_bytes=max_expanded if max_expanded is not None else DEFAULT_MAX_EXPANDED_BYTES,
        )
