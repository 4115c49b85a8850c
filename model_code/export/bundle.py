"""Write an edge bundle (layout in ``model_code.edge.layout``) from a contract model directory."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_code.core.model_dir import MODEL_FILE, ModelMetadata, model_file
from model_code.edge.layout import (
    EDGE_KEY,
    INPUT_NAME,
    ONNX_FILE,
    OUTPUT_NAME,
    RUNNER_DIR,
    RUNNER_REQUIREMENTS,
    BundleFormat,
    bundle_files,
    sha256_of,
    verify_manifest,
    write_manifest,
)
from model_code.runtimes import stage

# Pinned to the versions the export ran with: the bundle's runner was tested against exactly these. The runner
# tree carries the whole core, whose DICOMweb client (core/dicomweb) needs the last four; the runner never calls it.
_CORE = ("numpy", "nibabel", "pydicom", "highdicom", "pillow", "requests", "retrying", "dicomweb-client")
_RUNNER_DISTRIBUTIONS = {
    BundleFormat.ONNX: (*_CORE, "onnxruntime"),
    BundleFormat.TORCHSCRIPT: (*_CORE, "torch"),
}


class ExportError(ValueError):
    """The export cannot produce a faithful bundle; the message says what to change."""


@dataclass(frozen=True)
class ExportReport:
    bundle: Path
    format: BundleFormat
    files: int
    max_abs_difference: float | None
    label_disagreement: float | None
    archive: Path | None = None


def _prepare(out: Path, *, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ExportError(f"{out} exists and is not empty: choose a new --out or pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _copy_runner(out: Path, fmt: BundleFormat) -> None:
    # The edge runtime and what it may import (model_code.runtimes), nothing else: tests/model_code/export start
    # a runner from the bundle alone.
    stage("edge", out / RUNNER_DIR / "model_code")
    pins = [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in _RUNNER_DISTRIBUTIONS[fmt]]
    (out / RUNNER_DIR / RUNNER_REQUIREMENTS).write_text("\n".join(pins) + "\n")


def _write_network(model_dir: Path, out: Path, fmt: BundleFormat, metadata: ModelMetadata) -> dict[str, Any]:
    source = model_file(model_dir)
    if fmt is BundleFormat.TORCHSCRIPT:
        shutil.copyfile(source, out / MODEL_FILE)
        return {"modelFile": MODEL_FILE}

    import torch

    from model_code.export.onnx_export import ATOL, OPSET, RTOL, compare, export_onnx, phantom_windows

    module = torch.jit.load(str(source), map_location="cpu").eval()
    path = export_onnx(module, out / ONNX_FILE, roi_size=metadata.inference.roi_size)
    agreement = compare(module, path, phantom_windows(metadata))
    if not agreement.within_tolerance:
        raise ExportError(
            f"the ONNX export of {source} disagrees with the TorchScript on phantom windows (max |logit difference| "
            f"{agreement.max_abs_difference:.4g} > {ATOL} + {RTOL}*|logit|; {agreement.label_disagreement:.2%} of "
            "voxels change label): the network uses an op the ONNX exporter does not translate faithfully "
            "(in-place ops on views are the usual cause); export --format torchscript or rewrite that op"
        )
    return {
        "modelFile": ONNX_FILE,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "opset": OPSET,
        "tolerance": {"atol": ATOL, "rtol": RTOL},
        "maxAbsLogitDifference": agreement.max_abs_difference,
        "labelDisagreement": agreement.label_disagreement,
    }


def archive_bundle(bundle: Path, archive: Path) -> Path:
    """A zip of the bundle under a top folder ``bundle/`` (the Greengrass artifact); stable member order/times."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for path in [*bundle_files(bundle), bundle / "manifest.json"]:
            info = zipfile.ZipInfo(f"bundle/{path.relative_to(bundle).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            handle.writestr(info, path.read_bytes())
    return archive


def export_bundle(
    model_dir: Path, out: Path, *, fmt: BundleFormat, force: bool = False, archive: Path | None = None
) -> ExportReport:
    model_dir, out = Path(model_dir), Path(out)
    metadata = ModelMetadata.load(model_dir)
    model_file(model_dir)  # fail on a missing network before touching --out
    _prepare(out, force=force)
    try:
        edge = {"format": fmt.value, **_write_network(model_dir, out, fmt, metadata)}
        edge["sourceModelSha256"] = sha256_of(model_file(model_dir))
        dataclasses.replace(metadata, extra={**metadata.extra, EDGE_KEY: edge}).save(out)
        _copy_runner(out, fmt)
        write_manifest(out)
        entries = verify_manifest(out)
    except BaseException:
        # No half-written bundle left behind for someone to upload.
        shutil.rmtree(out, ignore_errors=True)
        raise
    written = archive_bundle(out, archive) if archive is not None else None
    return ExportReport(
        bundle=out,
        format=fmt,
        files=len(entries),
        max_abs_difference=edge.get("maxAbsLogitDifference"),
        label_disagreement=edge.get("labelDisagreement"),
        archive=written,
    )
