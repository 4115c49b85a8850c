"""Ours vs a stock MONAI Deploy App SDK 4 app: same TorchScript, same series, one process.

    make bench-segmentation        # builds .venv-map (MONAI Deploy + holoscan, mk/map.mk) first
    PYTHONPATH=. .venv-map/bin/python benchmarks/segmentation_pipeline.py [--slices 48] [--repeats 3]

The series is 48 slices of 512x512, built from the real CT slice pydicom ships
(``J2K_pixelrep_mismatch.dcm``: its pixels, pixel spacing and its oblique orientation), with a
spleen-like ellipsoid planted across the middle slices and a few HU of noise per slice. The model is
the contract's thresholding TorchScript (``save_threshold_model``), so both sides run the same network.

MONAI Deploy side: the app our MAP ships (model_code/map_app), run on the folder:
DICOMDataLoaderOperator -> DICOMSeriesSelectorOperator -> DICOMSeriesToVolumeOperator ->
MonaiBundleInferenceOperator -> DICOMSegmentationWriterOperator, running the bundle's own configs/inference.json
(the spleen bundle's stock MONAI transforms: Orientationd RAS, Spacingd 1.5x1.5x2.0 bilinear,
ScaleIntensityRanged -57..164 clipped; Activationsd softmax, Invertd, AsDiscreted argmax) with the
same sliding window (96^3, overlap 0.5, sw_batch_size). Ours: load_series -> SegmentationPipeline.run
-> SEG file. Both timings start from a folder of DICOM files with the model loaded from disk and end
with the SEG file written; imports and one warm-up run of each are outside the timings.

Agreement: both SEG files are read back with highdicom and compared voxel by voxel, matched by
source SOP Instance UID.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data

from model_code.core.dicom.files import load_series
from model_code.core.spleen import SPLEEN_LABEL
from model_code.segmentation.pipeline import SegmentationPipeline
from model_code.synthetic.dicom_writer import write_dicom_series
from testkit.models import save_threshold_model

REAL_SLICE = "J2K_pixelrep_mismatch.dcm"
SLICE_GAP_MM = 2.5


def build_series(out_dir: Path, *, slices: int, seed: int = 0) -> Path:
    """Write ``slices`` copies of the real CT slice, with a planted ellipsoid and per-slice noise."""
    path = pydicom.data.get_testdata_file(REAL_SLICE)
    if not isinstance(path, str):
        raise RuntimeError(f"pydicom's test file {REAL_SLICE} is not installed: reinstall pydicom==3.0.2")
    source = pydicom.dcmread(path)
    hu = source.pixel_array.astype(np.float32) * float(source.RescaleSlope) + float(source.RescaleIntercept)
    rows, cols = hu.shape
    orientation = np.asarray(source.ImageOrientationPatient, dtype=float)
    row_dir, col_dir = orientation[:3], orientation[3:]
    spacing = [float(v) for v in source.PixelSpacing]
    affine = np.eye(4)
    affine[:3, 0] = np.cross(row_dir, col_dir) * SLICE_GAP_MM
    affine[:3, 1] = col_dir * spacing[0]
    affine[:3, 2] = row_dir * spacing[1]
    affine[:3, 3] = np.asarray(source.ImagePositionPatient, dtype=float)

    rng = np.random.default_rng(seed)
    volume = np.repeat(hu[None], slices, axis=0)
    volume += np.asarray(rng.normal(0.0, 4.0, size=volume.shape), dtype=np.float32)
    # A spleen-like ellipsoid (115 HU) through the middle slices, inside the head's soft tissue.
    k, r, c = np.ogrid[:slices, :rows, :cols]
    organ = (
        ((k - slices / 2) / (slices * 0.35)) ** 2
        + ((r - rows * 0.55) / (rows * 0.12)) ** 2
        + ((c - cols * 0.4) / (cols * 0.09)) ** 2
    ) <= 1.0
    volume[organ] = 115.0 + np.asarray(rng.normal(0.0, 4.0, size=int(organ.sum())), dtype=np.float32)
    write_dicom_series(volume, affine, out_dir, series_description="Benchmark from pydicom's CT slice")
    return out_dir


def run_ours(model_dir: Path, dicom_dir: Path, out_dir: Path, *, sw_batch_size: int) -> tuple[float, Path]:
    start = time.perf_counter()
    pipeline = SegmentationPipeline.from_model_dir(model_dir, device=None, sw_batch_size=sw_batch_size)
    series = load_series(dicom_dir)
    result = pipeline.run(series)
    out_dir.mkdir(parents=True, exist_ok=True)
    seg_path = out_dir / "seg.dcm"
    result.seg_dataset.save_as(seg_path, enforce_file_format=True)
    return time.perf_counter() - start, seg_path


def build_deploy_app(model_dir: Path, dicom_dir: Path, out_dir: Path, *, sw_batch_size: int):
    """The MONAI Deploy App SDK app of stock operators that our MAP ships (model_code/map_app), on a folder:
    DICOM loader -> series selector -> series-to-volume -> MonaiBundleInferenceOperator -> SEG writer.
    Imported here: the SDK lives in the bench venv only."""
    from model_code.map_app.app import BundleSegApp

    return BundleSegApp(bundle=model_dir, output_dir=out_dir, dicom_dir=dicom_dir, sw_batch_size=sw_batch_size)


def run_deploy(model_dir: Path, dicom_dir: Path, out_dir: Path, *, sw_batch_size: int) -> tuple[float, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    app = build_deploy_app(model_dir, dicom_dir, out_dir, sw_batch_size=sw_batch_size)
    app.run()
    elapsed = time.perf_counter() - start
    written = sorted(out_dir.glob("*.dcm"))
    if len(written) != 1:
        raise RuntimeError(f"the MONAI Deploy app wrote {len(written)} .dcm files in {out_dir}, expected one SEG")
    return elapsed, written[0]


def seg_mask(seg_path: Path, sop_uids: list[str]) -> np.ndarray:
    """The spleen mask of a SEG, (slices, rows, cols) in the order of ``sop_uids``."""
    import highdicom as hd

    seg = hd.seg.segread(seg_path)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=sop_uids, segment_numbers=[SPLEEN_LABEL], skip_overlap_checks=True
    )
    return np.asarray(pixels[..., 0] > 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (median reported)")
    parser.add_argument("--sw-batch-size", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="seg-bench-"))
    model_dir = save_threshold_model(workdir / "model")
    dicom_dir = build_series(workdir / "dicom", slices=args.slices)
    warmup_dir = build_series(workdir / "warmup", slices=8, seed=1)
    print(f"series: {args.slices} x 512 x 512 from {REAL_SLICE}; workdir {workdir}", flush=True)

    # Warm-up: imports, TorchScript profiling runs and allocator growth stay out of the timings.
    run_ours(model_dir, warmup_dir, workdir / "warm-ours", sw_batch_size=args.sw_batch_size)
    run_deploy(model_dir, warmup_dir, workdir / "warm-deploy", sw_batch_size=args.sw_batch_size)

    ours_times: list[float] = []
    deploy_times: list[float] = []
    ours_seg = deploy_seg = Path()
    for repeat in range(args.repeats):
        # Alternate the two so load on a shared machine hits both alike.
        seconds, ours_seg = run_ours(model_dir, dicom_dir, workdir / f"ours-{repeat}", sw_batch_size=args.sw_batch_size)
        ours_times.append(seconds)
        seconds, deploy_seg = run_deploy(
            model_dir, dicom_dir, workdir / f"deploy-{repeat}", sw_batch_size=args.sw_batch_size
        )
        deploy_times.append(seconds)
        print(f"run {repeat + 1}: ours {ours_times[-1]:.2f} s, MONAI Deploy {deploy_times[-1]:.2f} s", flush=True)

    series = load_series(dicom_dir)
    uids = [str(ds.SOPInstanceUID) for ds in series.datasets]
    ours_mask, deploy_mask = seg_mask(ours_seg, uids), seg_mask(deploy_seg, uids)
    agreement = float(np.mean(ours_mask == deploy_mask))
    union = int(np.sum(ours_mask | deploy_mask))
    dice = 2.0 * float(np.sum(ours_mask & deploy_mask)) / max(int(ours_mask.sum() + deploy_mask.sum()), 1)

    ours_median, deploy_median = statistics.median(ours_times), statistics.median(deploy_times)
    print(
        f"ours:         {ours_median:.2f} s (median of {len(ours_times)}: {', '.join(f'{t:.2f}' for t in ours_times)})"
    )
    print(
        f"MONAI Deploy: {deploy_median:.2f} s (median of {len(deploy_times)}: "
        f"{', '.join(f'{t:.2f}' for t in deploy_times)})"
    )
    print(
        f"ratio ours/MONAI Deploy: {ours_median / deploy_median:.3f} of medians, "
        f"{min(ours_times) / min(deploy_times):.3f} of best runs (target <= 0.5)"
    )
    print(
        f"voxel agreement: {agreement * 100:.4f}% of {ours_mask.size} voxels (target >= 99.9%); "
        f"foreground ours {int(ours_mask.sum())}, MONAI Deploy {int(deploy_mask.sum())}, union {union}, "
        f"Dice {dice:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
