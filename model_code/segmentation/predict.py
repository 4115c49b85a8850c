"""Command line: segment one DICOM series with a MONAI bundle (the spleen model, or any segmentation bundle).

    python -m model_code.segmentation.predict --model-dir M --dicom-dir D --output-dir O \
        [--device cpu|cuda] [--sw-batch-size N] [--series-uid UID] [--viewer-url URL]
    python -m model_code.segmentation.predict --model-dir M --output-dir O \
        --dicomweb-url URL --study-uid UID --series-uid UID [--store] [--dicomweb-auth none|sigv4] ...

``--model-dir`` is a MONAI bundle in the Model Zoo's layout (configs/metadata.json, configs/inference.json,
models/model.ts and/or models/model.pt): its directory, its .zip, or a SageMaker model.tar.gz of it.

The series comes from a folder or .zip (``--dicom-dir``) or from a DICOMweb server (``--dicomweb-url``, a DICOMweb
root such as ``http://pacs/dicom-web`` or HealthImaging's ``https://dicom-medical-imaging.<region>.amazonaws.com/
datastore/<id>``, with ``--study-uid`` and ``--series-uid``); ``--store`` stores the SEG back into the source
study on the same root with STOW-RS. ``--dicomweb-auth`` defaults to sigv4 for HealthImaging's host, none otherwise.

Writes ``O/seg.dcm`` (DICOM SEG), ``O/result.json`` (summary; with ``--store`` its ``stored`` names the stored
instance; with ``--viewer-url`` its ``viewerUrl`` is the deep link that opens the study with this SEG once the SEG
is in the viewer's store) and ``O/overlay.png``. Progress goes to stderr. Exit codes: 0 done; 2 bad input (series,
bundle or arguments, a DICOMweb series that does not exist: the message names the file or URL and the
reason); 1 a failure: a DICOMweb server that refuses, fails or rejects the store (the message says which and
what to do; seg.dcm stays written), or anything unexpected (with its traceback).
"""

from __future__ import annotations

import argparse
import json
import re
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
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


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


def _uid(text: str) -> str:
    if not _UID.match(text) or len(text) > 64:
        raise argparse.ArgumentTypeError(f"must be a DICOM UID (digits and dots, at most 64), got {text!r}")
    return text


def _dicomweb_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must be an http(s) DICOMweb root, got {text!r}")
    return text.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.segmentation.predict",
        description="Segment one DICOM series with a MONAI bundle into a DICOM SEG, a JSON summary and a PNG overlay.",
    )
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="a MONAI bundle: its directory, its .zip or a SageMaker model.tar.gz of it")
    parser.add_argument("--dicom-dir", type=Path, default=None, help="folder (or .zip) of one CT series")
    parser.add_argument("--output-dir", type=Path, required=True, help="where seg.dcm, result.json, overlay.png go")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument("--sw-batch-size", type=_positive_int, default=None, help="windows per network call")
    parser.add_argument("--series-uid", type=_uid, default=None,
                        help="SeriesInstanceUID: the series to read from DICOMweb, or the one to use when --dicom-dir "
                        "holds several")
    dicomweb = parser.add_argument_group("DICOMweb (instead of --dicom-dir)")
    dicomweb.add_argument("--dicomweb-url", type=_dicomweb_url, default=None,
                          help="a DICOMweb root (QIDO-RS/WADO-RS/STOW-RS); with --study-uid and --series-uid")
    dicomweb.add_argument("--study-uid", type=_uid, default=None, help="StudyInstanceUID of the series to read")
    dicomweb.add_argument("--store", action="store_true",
                          help="STOW-RS the SEG into the source study at the same root; result.json names it")
    dicomweb.add_argument("--dicomweb-auth", choices=("none", "sigv4"), default=None,
                          help="default: sigv4 for HealthImaging's DICOMweb host, none otherwise")
    parser.add_argument("--viewer-url", type=_viewer_url, default=None,
                        help="the viewer stack's ViewerUrl: result.json then carries the SEG's deep link (viewerUrl)")
    return parser


def check_source(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exactly one source: --dicom-dir, or --dicomweb-url with --study-uid and --series-uid (exit 2 otherwise)."""
    if (args.dicom_dir is None) == (args.dicomweb_url is None):
        parser.error("give the series as --dicom-dir DIR or as --dicomweb-url URL --study-uid UID --series-uid UID")
    if args.dicomweb_url is None:
        extra = [flag for flag, value in (("--study-uid", args.study_uid), ("--store", args.store),
                                          ("--dicomweb-auth", args.dicomweb_auth)) if value]
        if extra:
            parser.error(f"{', '.join(extra)} go with --dicomweb-url (the series is read from a DICOMweb server)")
    elif args.study_uid is None or args.series_uid is None:
        parser.error("--dicomweb-url needs --study-uid and --series-uid (the series to read)")


def _progress(message: str) -> None:
    print(f"[segment] {message}", file=sys.stderr, flush=True)


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

    load_start = time.perf_counter()
    session = None
    if args.dicomweb_url is not None:
        from model_code.core.dicomweb import DicomWebSession

        session = DicomWebSession(args.dicomweb_url, auth=args.dicomweb_auth)
        _progress(f"reading series {args.series_uid} of study {args.study_uid} from {args.dicomweb_url}")
        series = session.load_series(args.study_uid, args.series_uid)
    else:
        _progress(f"reading series from {args.dicom_dir}")
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
    if session is not None:
        summary["source"] = {"dicomwebUrl": args.dicomweb_url, "studyInstanceUid": args.study_uid,
                             "seriesInstanceUid": args.series_uid}
    if args.store and session is not None:
        store_start = time.perf_counter()
        seg = result.seg_dataset
        _progress(f"storing the SEG into study {args.study_uid} at {args.dicomweb_url} (STOW-RS)")
        (stored,) = session.store([seg], study_instance_uid=args.study_uid)
        timings["store"] = round(time.perf_counter() - store_start, 4)
        timings["total"] = round(time.perf_counter() - started, 4)
        summary["stored"] = {"studyInstanceUid": str(seg.StudyInstanceUID),
                             "seriesInstanceUid": str(seg.SeriesInstanceUID),
                             "sopInstanceUid": stored.sop_instance_uid, "sopClassUid": stored.sop_class_uid,
                             "retrieveUrl": stored.retrieve_url}
    if args.viewer_url is not None:
        from model_code.core.viewer_link import viewer_link

        seg = result.seg_dataset
        summary["viewerUrl"] = viewer_link(args.viewer_url, str(seg.StudyInstanceUID), str(seg.SeriesInstanceUID))
    (output / RESULT_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    found = "; ".join(f"{s['label']} {s['volume_ml']} mL ({s['voxel_count']} voxels)" for s in summary["segments"])
    _progress(f"{found}; wrote {output}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_source(parser, args)
    from model_code.core.dicomweb import DicomWebError, DicomWebNotFound
    from model_code.core.errors import InvalidSeriesError, ModelDirectoryError
    from model_code.segmentation.pipeline import resolve_device

    try:
        resolve_device(args.device)  # --device cuda on a machine without CUDA is a bad argument
    except ValueError as error:
        _progress(f"error: {error}")
        return EXIT_BAD_INPUT
    try:
        run(args)
    except (InvalidSeriesError, ModelDirectoryError, DicomWebNotFound) as error:
        _progress(f"error: {error}")
        return EXIT_BAD_INPUT
    except DicomWebError as error:
        kept = Path(args.output_dir) / SEG_FILE
        _progress(f"error: {error}" + (f" (the SEG is kept at {kept})" if kept.exists() else ""))
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
