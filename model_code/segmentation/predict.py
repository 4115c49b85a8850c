"""Command line: segment the spleen in one DICOM series.

    python -m model_code.segmentation.predict --model-dir M --dicom-dir D --output-dir O \
        [--device cpu|cuda] [--sw-batch-size N] [--series-uid UID] [--viewer-url URL]

Writes ``O/seg.dcm`` (DICOM SEG), ``O/result.json`` (summary; with ``--viewer-url`` its ``viewerUrl`` is the deep
link that opens the study with this SEG once the SEG is in the viewer's store) and ``O/overlay.png``. Progress goes
to stderr. Exit codes: 0 done; 2 bad input (series, model directory or arguments: the message names
the file and the reason); 1 an unexpected failure (with its traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

SEG_FILE = "seg.dcm"
RESULT_FILE = "result.json"
OVERLAY_FILE = "overlay.png"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _viewer_url(text: str) -> str:
    from model_code.core.viewer_link import check_viewer_url

    try:
        return check_viewer_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.segmentation.predict",
        description="Spleen CT segmentation of one DICOM series into a DICOM SEG, a JSON summary and a PNG overlay.",
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="folder holding model.ts and metadata.json")
    parser.add_argument("--dicom-dir", type=Path, required=True, help="folder (or .zip) of one CT series")
    parser.add_argument("--output-dir", type=Path, required=True, help="where seg.dcm, result.json, overlay.png go")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument("--sw-batch-size", type=_positive_int, default=None, help="windows per network call")
    parser.add_argument("--series-uid", default=None, help="SeriesInstanceUID to use when the input holds several")
    parser.add_argument("--viewer-url", type=_viewer_url, default=None,
                        help="the viewer stack's ViewerUrl: result.json then carries the SEG's deep link (viewerUrl)")
    return parser


def _progress(message: str) -> None:
    print(f"[spleen-seg] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, object]:
    """Load, segment and write; returns result.json's content. Raises on bad input."""
    from model_code.core.dicom.files import load_series
    from model_code.segmentation.pipeline import SegmentationPipeline

    started = time.perf_counter()
    _progress(f"loading model from {args.model_dir}")
    pipeline = SegmentationPipeline.from_model_dir(
        args.model_dir, device=args.device, sw_batch_size=args.sw_batch_size
    )
    model_seconds = time.perf_counter() - started

    _progress(f"reading series from {args.dicom_dir}")
    load_start = time.perf_counter()
    series = load_series(args.dicom_dir, series_instance_uid=args.series_uid)
    load_seconds = time.perf_counter() - load_start
    _progress(f"series {series.series_instance_uid}: {series.volume.shape[0]} slices of {series.volume.shape[1:]}")

    result = pipeline.run(series, progress=lambda stage: _progress(f"stage: {stage}"))

    write_start = time.perf_counter()
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    result.seg_dataset.save_as(output / SEG_FILE, enforce_file_format=True)
    (output / OVERLAY_FILE).write_bytes(result.overlay_png)
    summary = dict(result.summary)
    timings = dict(summary.get("timings_s", {}))
    timings.update(
        load_model=round(model_seconds, 4),
        load_series=round(load_seconds, 4),
        write=round(time.perf_counter() - write_start, 4),
        total=round(time.perf_counter() - started, 4),
    )
    summary["timings_s"] = timings
    summary["outputs"] = {"seg": SEG_FILE, "overlay": OVERLAY_FILE}
    if args.viewer_url is not None:
        from model_code.core.viewer_link import viewer_link

        seg = result.seg_dataset
        summary["viewerUrl"] = viewer_link(args.viewer_url, str(seg.StudyInstanceUID), str(seg.SeriesInstanceUID))
    (output / RESULT_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    _progress(
        f"spleen {summary['spleen_volume_ml']} mL ({summary['spleen_voxel_count']} voxels); wrote {output}"
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from model_code.core.errors import InvalidSeriesError, ModelDirectoryError
    from model_code.segmentation.pipeline import resolve_device

    try:
        resolve_device(args.device)  # --device cuda on a machine without CUDA is a bad argument
    except ValueError as error:
        _progress(f"error: {error}")
        return EXIT_BAD_INPUT
    try:
        run(args)
    except (InvalidSeriesError, ModelDirectoryError) as error:
        _progress(f"error: {error}")
        return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
