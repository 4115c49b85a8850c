"""What every model server reads from its environment (SageMaker and Triton images): names as constants,
parsed once into a frozen object. The SageMaker runtime adds its endpoints (``model_code.serving.settings``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

# "cpu", "cuda", "cuda:1"; unset: CUDA when present.
SERVING_DEVICE = "SERVING_DEVICE"
SERVING_SW_BATCH_SIZE = "SERVING_SW_BATCH_SIZE"
# Threads (model_code.core.threads): the worker count is the SageMaker inference toolkit's own variable (it
# writes TorchServe's default_workers_per_model from it), so each worker reads the number the frontend starts;
# the intra-op threads of each worker are torch's set_num_threads and onnxruntime's intra_op_num_threads.
# Unset, both are derived from the machine so that workers x threads <= vCPUs.
SAGEMAKER_MODEL_SERVER_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
SERVING_INTRA_OP_THREADS = "SERVING_INTRA_OP_THREADS"
# "0" skips the warm-up each server runs before it reports ready (model_code/synthetic/warmup.py); default on.
SERVING_WARMUP = "SERVING_WARMUP"

# The input limits (issue 20): each checked before the work it bounds, each named in the error it raises.
# Bound on a request body (SageMaker async inference's own limit is 1 GB).
SERVING_MAX_BODY_BYTES = "SERVING_MAX_BODY_BYTES"
# Bound on the members of a zip request: one series is at most a few thousand files.
SERVING_MAX_ZIP_MEMBERS = "SERVING_MAX_ZIP_MEMBERS"
# Bound on the bytes a zip request's members declare (a zip bomb is refused before anything is decompressed).
SERVING_MAX_EXPANDED_BYTES = "SERVING_MAX_EXPANDED_BYTES"
# Bound on slices x rows x columns of the series, checked from the headers before any pixel is decoded.
SERVING_MAX_SERIES_PIXELS = "SERVING_MAX_SERIES_PIXELS"
# Bound on the voxels of the model grid after resampling to the model's spacing, computed from the headers.
SERVING_MAX_MODEL_VOXELS = "SERVING_MAX_MODEL_VOXELS"
# The voxel spacings (in-plane and between slices) a plausible series has, in mm.
SERVING_MIN_SPACING_MM = "SERVING_MIN_SPACING_MM"
SERVING_MAX_SPACING_MM = "SERVING_MAX_SPACING_MM"
# Fewer slices is not a volume the model's 3-D window can read (a 2-slice series gave an empty SEG).
SERVING_MIN_SLICES = "SERVING_MIN_SLICES"
# Bounds on a JSON request document (it is ~100 bytes, one level deep).
SERVING_MAX_JSON_BYTES = "SERVING_MAX_JSON_BYTES"
SERVING_MAX_JSON_DEPTH = "SERVING_MAX_JSON_DEPTH"

DEFAULT_MAX_BODY_BYTES = 1 << 30
DEFAULT_MAX_ZIP_MEMBERS = 20_000
# A 48x512x512 CT series is ~25 MB; 4 GiB leaves room for the largest single series and none for a bomb.
DEFAULT_MAX_EXPANDED_BYTES = 4 << 30
# 2000 slices of 512x512: a whole-body thin-slice CT.
DEFAULT_MAX_SERIES_PIXELS = 2000 * 512 * 512
# 512^3 model voxels: a whole-body CT at the spleen model's 1.5 x 1.5 x 2 mm is ~ 330 x 330 x 900.
DEFAULT_MAX_MODEL_VOXELS = 512**3
DEFAULT_MIN_SPACING_MM = 0.05
DEFAULT_MAX_SPACING_MM = 10.0
DEFAULT_MIN_SLICES = 4
DEFAULT_MAX_JSON_BYTES = 64 << 10
DEFAULT_MAX_JSON_DEPTH = 16


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


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """"1"/"0" (or "true"/"false") from ``name``, ``default`` when unset; anything else raises naming it."""
    value = env_value(env, name)
    if value is None:
        return default
    if value.lower() not in ("0", "1", "true", "false"):
        raise ValueError(f"{name} must be 1 or 0 (true or false), got {value!r}")
    return value.lower() in ("1", "true")


def positive_float(env: Mapping[str, str], name: str, default: float, unit: str = "") -> float:
    """A finite number > 0 from ``name``, ``default`` when unset; anything else raises ValueError naming it."""
    value = env_value(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a number > 0{f' ({unit})' if unit else ''}, got {value!r}")
    return number


@dataclass(frozen=True)
class InputLimits:
    """The bounds a request is checked against before the work each bounds (``model_code.core.limits``)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_zip_members: int = DEFAULT_MAX_ZIP_MEMBERS
    max_expanded_bytes: int = DEFAULT_MAX_EXPANDED_BYTES
    max_series_pixels: int = DEFAULT_MAX_SERIES_PIXELS
    max_model_voxels: int = DEFAULT_MAX_MODEL_VOXELS
    min_spacing_mm: float = DEFAULT_MIN_SPACING_MM
    max_spacing_mm: float = DEFAULT_MAX_SPACING_MM
    min_slices: int = DEFAULT_MIN_SLICES
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH

    def __post_init__(self) -> None:
        if self.min_spacing_mm >= self.max_spacing_mm:
            raise ValueError(
                f"{SERVING_MIN_SPACING_MM} ({self.min_spacing_mm}) must be below {SERVING_MAX_SPACING_MM} "
                f"({self.max_spacing_mm})"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InputLimits:
        env = os.environ if environ is None else environ

        def integer(name: str, default: int, unit: str) -> int:
            value = positive_int(env, name, unit)
            return default if value is None else value

        return cls(
            max_body_bytes=integer(SERVING_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, "bytes"),
            max_zip_members=integer(SERVING_MAX_ZIP_MEMBERS, DEFAULT_MAX_ZIP_MEMBERS, "members"),
            max_expanded_bytes=integer(SERVING_MAX_EXPANDED_BYTES, DEFAULT_MAX_EXPANDED_BYTES, "bytes"),
            max_series_pixels=integer(SERVING_MAX_SERIES_PIXELS, DEFAULT_MAX_SERIES_PIXELS, "pixels"),
            max_model_voxels=integer(SERVING_MAX_MODEL_VOXELS, DEFAULT_MAX_MODEL_VOXELS, "voxels"),
            min_spacing_mm=positive_float(env, SERVING_MIN_SPACING_MM, DEFAULT_MIN_SPACING_MM, "mm"),
            max_spacing_mm=positive_float(env, SERVING_MAX_SPACING_MM, DEFAULT_MAX_SPACING_MM, "mm"),
            min_slices=integer(SERVING_MIN_SLICES, DEFAULT_MIN_SLICES, "slices"),
            max_json_bytes=integer(SERVING_MAX_JSON_BYTES, DEFAULT_MAX_JSON_BYTES, "bytes"),
            max_json_depth=integer(SERVING_MAX_JSON_DEPTH, DEFAULT_MAX_JSON_DEPTH, "levels"),
        )


@dataclass(frozen=True)
class ServerSettings:
    device: str | None = None
    sw_batch_size: int | None = None
    workers: int | None = None
    intra_op_threads: int | None = None
    warmup: bool = True
    limits: InputLimits = field(default_factory=InputLimits)

    @property
    def max_expanded_bytes(self) -> int:
        return self.limits.max_expanded_bytes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Read every setting once; an invalid value raises ValueError naming the variable, at model load."""
        env = os.environ if environ is None else environ
        return ServerSettings(
            device=env_value(env, SERVING_DEVICE),
            sw_batch_size=positive_int(env, SERVING_SW_BATCH_SIZE),
            workers=positive_int(env, SAGEMAKER_MODEL_SERVER_WORKERS, "workers"),
            intra_op_threads=positive_int(env, SERVING_INTRA_OP_THREADS, "threads"),
            warmup=flag(env, SERVING_WARMUP, default=True),
            limits=InputLimits.from_env(env),
        )
