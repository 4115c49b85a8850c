"""``python -m model_code.map_app``: run a MONAI bundle as a MAP app on a DICOM folder or a HealthImaging image set.

    python -m model_code.map_app --model-dir BUNDLE --dicom-dir D --output-dir O
    python -m model_code.map_app --model-dir BUNDLE --datastore-id X --image-set-id Y [--endpoint-url U] --output-dir O

BUNDLE is a MONAI bundle directory (configs/ + models/), a bundle .zip, or a SageMaker model.tar.gz of one.

Inside the packaged MAP the paths default to the MAP's environment (HOLOSCAN_INPUT_PATH,
HOLOSCAN_OUTPUT_PATH, HOLOSCAN_MODEL_PATH), so the container runs with no arguments on a folder.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from pathlib import Path

from model_code.core.errors import ModelDirectoryError
from model_code.map_app.app import BundleSegApp, HealthImagingSource


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def build_app(argv: list[str] | None = None) -> BundleSegApp:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # The MAP copies `-m DIR` to models/DIR/: the bundle sits at the path or in its one folder (open_bundle).
    parser.add_argument("--model-dir", type=Path, default=_env_path("HOLOSCAN_MODEL_PATH"),
                        help="a MONAI bundle: directory, .zip or model.tar.gz")
    parser.add_argument("--output-dir", type=Path, default=_env_path("HOLOSCAN_OUTPUT_PATH"))
    parser.add_argument("--dicom-dir", type=Path, default=None, help="a folder of DICOM files (default: the MAP input)")
    parser.add_argument("--datastore-id", default=None)
    parser.add_argument("--image-set-id", default=None)
    parser.add_argument("--series-instance-uid", default=None, help="default: the image set's largest series")
    parser.add_argument("--endpoint-url", default=None, help="a HealthImaging endpoint other than AWS's")
    parser.add_argument("--region", default=None, help="AWS region (default: the usual AWS configuration chain)")
    args = parser.parse_args(argv)
    if args.model_dir is None or args.output_dir is None:
        parser.error("--model-dir and --output-dir are required outside a MAP (no HOLOSCAN_*_PATH set)")
    if (args.datastore_id is None) != (args.image_set_id is None):
        parser.error("--datastore-id and --image-set-id go together")

    healthimaging = None
    dicom_dir = args.dicom_dir
    if args.datastore_id is not None:
        if dicom_dir is not None:
            parser.error("give --dicom-dir or an image set, not both")
        from model_code.healthimaging import make_client

        healthimaging = HealthImagingSource(
            datastore_id=args.datastore_id,
            image_set_id=args.image_set_id,
            client_factory=functools.partial(make_client, region_name=args.region, endpoint_url=args.endpoint_url),
            series_instance_uid=args.series_instance_uid,
        )
    elif dicom_dir is None:
        dicom_dir = _env_path("HOLOSCAN_INPUT_PATH")
        if dicom_dir is None:
            parser.error("give --dicom-dir, or --datastore-id and --image-set-id")
    try:
        return BundleSegApp(bundle=args.model_dir, output_dir=args.output_dir, dicom_dir=dicom_dir,
                            healthimaging=healthimaging)
    except ModelDirectoryError as error:
        raise SystemExit(f"--model-dir {args.model_dir}: {error}") from error


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app(argv)
    app.run()
    written = sorted(app.output_dir.glob("*.dcm"))
    if not written:
        print(f"no SEG written in {app.output_dir}", file=sys.stderr)
        return 1
    print(f"SEG: {written[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
