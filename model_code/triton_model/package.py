"""Build the Triton model repository entry for a MONAI bundle, and the per-model archive SageMaker loads.

A SageMaker multi-model endpoint on the Triton image downloads ``<TargetModel>`` (``name.tar.gz``) from its
S3 prefix and unpacks it into the model repository, so the archive holds exactly one model folder::

    name/config.pbtxt        (name: "name", python backend, inputs/outputs, dynamic batching)
    name/1/model.py          (imports model_code.triton_model.backend)
    name/1/configs/metadata.json, name/1/configs/inference.json, name/1/models/model.ts|model.pt, ...
                             (the bundle, every file of it: the version folder is the bundle's root)

The config and model.py are rendered here, in one place.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from model_code.core.bundle_layout import check_bundle_files, open_bundle

DEFAULT_MODEL_NAME = "spleen_ct_segmentation"
VERSION = "1"
ARCHIVE_SUFFIX = ".tar.gz"
# Triton model names become URL path segments and S3 object names: keep them to a safe alphabet.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# How long the dynamic batcher waits to fill a batch: short next to a segmentation's seconds.
MAX_QUEUE_DELAY_US = 50_000
MAX_BATCH_SIZE = 4

CONFIG_TEMPLATE = """\
# Rendered by model_code.triton_model.package: edit the template there, not this copy.
name: "{name}"
backend: "python"
max_batch_size: {max_batch_size}
input [
  {{
    name: "DICOM_ZIP"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }}
]
output [
  {{
    name: "SEG"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }},
  {{
    name: "SUMMARY"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {max_queue_delay_us}
}}
# Python-backend instances are processes; the pipeline itself moves the network to CUDA when present.
instance_group [
  {{
    count: 1
    kind: KIND_CPU
  }}
]
"""

MODEL_PY = '''\
"""Triton python-backend entry: the spleen pipeline lives in model_code.triton_model.backend."""

from model_code.triton_model.backend import TritonPythonModel

__all__ = ["TritonPythonModel"]
'''


def check_model_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"model name {name!r} must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def render_config(name: str = DEFAULT_MODEL_NAME) -> str:
    return CONFIG_TEMPLATE.format(
        name=check_model_name(name), max_batch_size=MAX_BATCH_SIZE, max_queue_delay_us=MAX_QUEUE_DELAY_US
    )


def write_model_entry(repository: Path, *, name: str = DEFAULT_MODEL_NAME, model_dir: Path | None = None) -> Path:
    """Write ``repository/name`` (config.pbtxt, 1/model.py, and, when ``model_dir`` is given, the bundle it names
    (a directory, .zip or model.tar.gz) copied into the version folder)."""
    entry = Path(repository) / check_model_name(name)
    version = entry / VERSION
    version.mkdir(parents=True, exist_ok=True)
    (entry / "config.pbtxt").write_text(render_config(name))
    (version / "model.py").write_text(MODEL_PY)
    if model_dir is not None:
        with tempfile.TemporaryDirectory(prefix="triton-bundle-") as unpacked:
            root = check_bundle_files(open_bundle(Path(model_dir), Path(unpacked)))  # fail here, not in Triton
            shutil.copytree(root, version, dirs_exist_ok=True)
    return entry


def package_triton_model(model_dir: Path, out_path: Path) -> Path:
    """``out_path`` = ``<name>.tar.gz``: one model folder named ``<name>`` (the TargetModel of the endpoint)."""
    out_path = Path(out_path)
    if not out_path.name.endswith(ARCHIVE_SUFFIX):
        raise ValueError(f"out_path must end with {ARCHIVE_SUFFIX} (SageMaker's TargetModel), got {out_path.name}")
    name = check_model_name(out_path.name[: -len(ARCHIVE_SUFFIX)])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="triton-package-") as staging:
        entry = write_model_entry(Path(staging), name=name, model_dir=Path(model_dir))
        with tarfile.open(out_path, "w:gz") as archive:
            archive.add(entry, arcname=name)
    return out_path
