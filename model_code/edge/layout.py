"""What an edge bundle holds, and the checksum manifest both the exporter and the runner read.

```
<bundle>/
  model.onnx | model.ts     the network (ONNX for onnxruntime, or the source bundle's TorchScript)
  edge.json                 the model as the runner applies it, MONAI-free (name, version, labels, pre-processing,
                            sliding window: read from the MONAI bundle by the export), plus an "edge" section
                            (format, tensor names, tolerance, the source network's sha256)
  source/configs/           the source MONAI bundle's configs, verbatim (what the model was, for an audit)
  runner/                   the runner's Python sources (model_code subset) and requirements.txt
  manifest.json             sha256 and size of every other file
```
The runner carries no MONAI: it never parses the MONAI configs, it reads edge.json.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
DESCRIPTION_FILE = "edge.json"
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.ts"
SOURCE_DIR = "source"
RUNNER_DIR = "runner"
RUNNER_REQUIREMENTS = "requirements.txt"
EDGE_KEY = "edge"  # the edge.json section the exporter adds
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
MANIFEST_SCHEMA = 1
_CHUNK = 1 << 20


class BundleFormat(StrEnum):
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"


class BundleError(ValueError):
    """An edge bundle is incomplete, altered, or not one this code wrote."""


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    sha256: str
    size: int


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(bundle: Path) -> list[Path]:
    """Every file of the bundle but the manifest, in a stable order (POSIX relative paths sorted)."""
    files = [p for p in bundle.rglob("*") if p.is_file() and p.name != MANIFEST_FILE and "__pycache__" not in p.parts]
    return sorted(files, key=lambda p: p.relative_to(bundle).as_posix())


def write_manifest(bundle: Path) -> Path:
    entries = [
        {"path": p.relative_to(bundle).as_posix(), "sha256": sha256_of(p), "size": p.stat().st_size}
        for p in bundle_files(bundle)
    ]
    path = bundle / MANIFEST_FILE
    path.write_text(json.dumps({"schema": MANIFEST_SCHEMA, "files": entries}, indent=2, sort_keys=True) + "\n")
    return path


def verify_manifest(bundle: Path) -> list[ManifestEntry]:
    """Check each listed file's size and sha256 and that none was added; BundleError names the first problem."""
    path = Path(bundle) / MANIFEST_FILE
    if not path.is_file():
        raise BundleError(
            f"{path} is missing: {bundle} is not an edge bundle (export one with python -m model_code.export)"
        )
    try:
        document: Any = json.loads(path.read_text())
        entries = [ManifestEntry(str(e["path"]), str(e["sha256"]), int(e["size"])) for e in document["files"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise BundleError(f"{path} is not a bundle manifest ({error}): export the bundle again") from error
    listed = {entry.path for entry in entries}
    present = {p.relative_to(bundle).as_posix() for p in bundle_files(Path(bundle))}
    if present - listed:
        added = sorted(present - listed)
        raise BundleError(f"files not in the manifest: {added}: the bundle was altered, export it again")
    for entry in entries:
        file = Path(bundle) / entry.path
        if not file.is_file():
            raise BundleError(f"{entry.path} is listed in the manifest but missing: copy the whole bundle")
        if file.stat().st_size != entry.size or sha256_of(file) != entry.sha256:
            raise BundleError(f"{entry.path} does not match its manifest checksum: the copy is corrupt, fetch it again")
    return entries
