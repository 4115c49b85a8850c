"""Write an edge bundle (layout in ``model_code.edge.layout``) from a MONAI bundle (directory, .zip or model.tar.gz).

The MONAI bundle is read with the serving side's reader (``model_code.segmentation.bundle.ModelBundle``: MONAI's
``ConfigParser``), so the edge runner applies what the cloud endpoints apply. The runner is numpy + onnxruntime
and implements the spleen-style chain only (orientation, spacing, intensity window, sliding window, softmax,
argmax over background + one label): a bundle asking for anything else is refused here, naming the transform,
rather than run differently at the edge.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_code.core.bundle_layout import INFERENCE_JSON, METADATA_JSON, MODEL_TS
from model_code.core.model_dir import ModelMetadata
from model_code.edge.layout import (
    DESCRIPTION_FILE,
    EDGE_KEY,
    INPUT_NAME,
    ONNX_FILE,
    OUTPUT_NAME,
    RUNNER_DIR,
    RUNNER_REQUIREMENTS,
    SOURCE_DIR,
    TORCHSCRIPT_FILE,
    BundleFormat,
    bundle_files,
    sha256_of,
    verify_manifest,
    write_manifest,
)
from model_code.runtimes import stage

if TYPE_CHECKING:
    import torch

    from model_code.segmentation.bundle import ModelBundle

# What the edge runner's numpy chain implements (model_code.core.transforms_numpy): the stock transforms it
# replaces, and those that change nothing in memory (file loading, channel and type bookkeeping).
EDGE_PREPROCESSING = frozenset({"LoadImaged", "EnsureChannelFirstd", "Orientationd", "Spacingd",
                                "ScaleIntensityRanged", "EnsureTyped"})
# Softmax, the inversion onto the series grid, argmax; SaveImaged is the SEG writer's job at the edge.
EDGE_POSTPROCESSING = frozenset({"Activationsd", "Invertd", "AsDiscreted", "EnsureTyped", "SaveImaged"})

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


def _check_edge_chain(bundle: ModelBundle, source: Path) -> None:
    """Refuse what the edge runner would not do as the bundle says (it has no MONAI Compose to fall back on)."""
    description = bundle.description
    if description.task != "segmentation":
        raise ExportError(f"{source} is a {description.task} bundle: the edge runner segments; export a segmentation "
                          "bundle")
    if len(description.labels) != 2:
        raise ExportError(
            f"{source} has {len(description.labels)} labels {description.labels}: the edge runner segments "
            "background + one label; serve multi-label bundles from the cloud endpoints"
        )
    for config_id, allowed in (("preprocessing", EDGE_PREPROCESSING), ("postprocessing", EDGE_POSTPROCESSING)):
        if config_id not in bundle.parser:
            continue
        config = bundle.parser[config_id]
        transforms = config.get("transforms", []) if isinstance(config, dict) else []
        names = [str(t.get("_target_", "?")).rsplit(".", 1)[-1] for t in transforms if isinstance(t, dict)]
        unknown = [name for name in names if name not in allowed]
        if unknown:
            raise ExportError(
                f"{source}: {config_id} has {unknown}, which the edge runner does not implement (it applies "
                f"{sorted(allowed)} in numpy): serve this bundle from the cloud endpoints, which run MONAI's Compose"
            )


def _network(bundle: ModelBundle) -> torch.nn.Module:
    return bundle.network("cpu")


def _write_network(bundle: ModelBundle, out: Path, fmt: BundleFormat, source: Path) -> dict[str, Any]:
    import torch

    metadata = bundle.description
    if fmt is BundleFormat.TORCHSCRIPT:
        if (bundle.root / MODEL_TS).is_file():
            shutil.copyfile(bundle.root / MODEL_TS, out / TORCHSCRIPT_FILE)
        else:  # network_def + model.pt: script it, as the trainer does
            torch.jit.save(torch.jit.script(_network(bundle)), str(out / TORCHSCRIPT_FILE))
        return {"modelFile": TORCHSCRIPT_FILE}

    from model_code.export.onnx_export import ATOL, OPSET, RTOL, compare, export_onnx, phantom_windows

    module = _network(bundle).eval()
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


def _source_sha256(bundle: ModelBundle) -> str:
    from model_code.core.bundle_layout import MODEL_PT

    network = bundle.root / (MODEL_TS if (bundle.root / MODEL_TS).is_file() else MODEL_PT)
    return sha256_of(network)


def write_description(out: Path, metadata: ModelMetadata) -> Path:
    path = out / DESCRIPTION_FILE
    path.write_text(json.dumps(metadata.to_json(), indent=2, sort_keys=True) + "\n")
    return path


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
    source: Path, out: Path, *, fmt: BundleFormat, force: bool = False, archive: Path | None = None
) -> ExportReport:
    """The edge bundle of the MONAI bundle at ``source`` (directory, .zip or model.tar.gz), written to ``out``."""
    from model_code.segmentation.bundle import ModelBundle

    source, out = Path(source), Path(out)
    with tempfile.TemporaryDirectory(prefix="edge-export-") as work:
        bundle = ModelBundle.load(source, workdir=Path(work))  # fails on a broken bundle before touching --out
        _check_edge_chain(bundle, source)
        _prepare(out, force=force)
        try:
            edge = {"format": fmt.value, **_write_network(bundle, out, fmt, source)}
            edge["sourceModelSha256"] = _source_sha256(bundle)
            metadata = bundle.description
            write_description(out, dataclasses.replace(metadata, extra={**metadata.extra, EDGE_KEY: edge}))
            for config in (METADATA_JSON, INFERENCE_JSON):
                target = out / SOURCE_DIR / config
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bundle.root / config, target)
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
