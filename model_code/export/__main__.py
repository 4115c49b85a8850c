"""``python -m model_code.export --model-dir BUNDLE --format onnx|torchscript --out E [--archive E.zip]``.

BUNDLE is a MONAI bundle: a directory, a bundle .zip, or a SageMaker model.tar.gz of one.
Exit codes: 0 written, 2 bad input (the bundle, --out, a bundle the edge runner cannot run as it says, or an
ONNX export that disagrees with the TorchScript beyond the stated tolerance).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from model_code.core.errors import ModelDirectoryError
from model_code.edge.layout import BundleError, BundleFormat
from model_code.export.bundle import ExportError, export_bundle

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_code.export", description="Export an edge bundle.")
    parser.add_argument("--model-dir", type=Path, required=True, help="a MONAI bundle: directory, .zip or model.tar.gz")
    parser.add_argument("--format", choices=[f.value for f in BundleFormat], default=BundleFormat.ONNX.value)
    parser.add_argument("--out", type=Path, required=True, help="the bundle folder to write")
    parser.add_argument("--archive", type=Path, help="also write the bundle as a zip (the Greengrass artifact)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    args = parser.parse_args(argv)
    try:
        report = export_bundle(
            args.model_dir, args.out, fmt=BundleFormat(args.format), force=args.force, archive=args.archive
        )
    except (ExportError, ModelDirectoryError, BundleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps({
        "bundle": str(report.bundle),
        "format": report.format.value,
        "files": report.files,
        "maxAbsLogitDifference": report.max_abs_difference,
        "labelDisagreement": report.label_disagreement,
        "archive": str(report.archive) if report.archive else None,
    }, indent=2))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
