"""One MONAI bundle, two ways: our fast path vs MONAI's own Compose, inferer and Invertd alone.

    make bench-bundle              # BENCH_BUNDLE_ARGS="--slices 48 --size 512 --repeats 3 --network threshold"
    PYTHONPATH=. .venv/bin/python benchmarks/bundle_fast_path.py [--device cpu|cuda] [--network unet]

The bundle is the Model Zoo's spleen_ct_segmentation layout (``testkit.models.save_zoo_spleen_bundle``: its
configs/inference.json and configs/metadata.json keys, models/model.ts), holding the thresholding network by default
(``--network unet``: the zoo's UNet, untrained, for the network's real cost). The series is a CT phantom of
``--slices`` x ``--size`` x ``--size`` voxels (3.0 x 0.75 x 0.75 mm), in memory on both sides.

* Ours: ``SegmentationPipeline.from_bundle(...).predict_mask``: the bundle planned by
  ``model_code.segmentation.bundle_inference`` (Orientationd/Spacingd/ScaleIntensityRanged on the fast path,
  the logit-difference window, the slab inverse).
* MONAI alone: the same bundle's objects from ``ConfigParser``: its pre-processing ``Compose`` without
  ``LoadImaged`` on a ``MetaTensor`` of the volume, its ``SlidingWindowInferer``, its post-processing
  (``Activationsd``, ``Invertd``, ``AsDiscreted``), as MONAI Deploy's bundle operator runs a bundle.

Both start from the volume in memory and end with the label map on the series' grid as a numpy array; one
warm-up run each is outside the timings, then the median of ``--repeats``. The label maps are compared voxel
by voxel (they agree but for voxels whose probability MONAI itself puts at 0.5 within float error).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

SPACING_MM = (3.0, 0.75, 0.75)


def monai_alone(bundle_dir: Path, device: torch.device) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The bundle run by MONAI's objects only: a function (volume, affine LPS) -> label map (uint8)."""
    from monai.bundle import ConfigParser
    from monai.transforms import Compose, LoadImaged, SaveImaged

    from model_code.core.bundle_layout import INFERENCE_JSON, METADATA_JSON, MODEL_TS
    from model_code.segmentation.bundle_inference import loaded_image

    parser = ConfigParser()
    parser.read_meta(str(bundle_dir / METADATA_JSON))
    parser.read_config(str(bundle_dir / INFERENCE_JSON))
    pre = Compose([t for t in parser.get_parsed_content("preprocessing").flatten().transforms
                   if not isinstance(t, LoadImaged)])
    inferer = parser.get_parsed_content("inferer")
    post = Compose([t for t in parser.get_parsed_content("postprocessing").flatten().transforms
                    if not isinstance(t, SaveImaged)])
    network = torch.jit.load(str(bundle_dir / MODEL_TS), map_location=device).eval()

    def run(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            data: dict[str, Any] = pre({"image": loaded_image(volume, affine)})
            data["pred"] = inferer(data["image"][None].to(device), network)[0].cpu()
            labels = torch.as_tensor(post(data)["pred"])[0]
        # loaded_image hands MONAI the (col, row, slice) order LoadImaged gives; back to the series' order.
        return labels.permute(2, 1, 0).round().to(torch.uint8).numpy()

    return run


def timed(run: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    result = run()  # warm-up: one-time costs (allocator, TorchScript profiling) outside the timings
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--network", choices=("threshold", "unet"), default="threshold")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    args = parser.parse_args(argv)

    from model_code.segmentation.pipeline import SegmentationPipeline, resolve_device
    from model_code.synthetic.phantom import make_phantom
    from testkit.models import save_zoo_spleen_bundle

    device = resolve_device(args.device)
    scan = make_phantom(shape=(args.slices, args.size, args.size), spacing=SPACING_MM, seed=0)
    volume, affine = scan.volume_hu, scan.affine
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as work:
        module = None
        if args.network == "unet":
            from model_code.segmentation.networks import build_spleen_unet

            torch.manual_seed(0)
            module = build_spleen_unet()
        bundle_dir = save_zoo_spleen_bundle(Path(work) / "spleen_ct_segmentation", module)
        pipeline = SegmentationPipeline.from_bundle(bundle_dir, device=device, amp=False)
        assert pipeline.inference is not None
        print(f"bundle {bundle_dir.name} ({args.network}), series {volume.shape} at {SPACING_MM} mm, "
              f"device {device}, route {pipeline.inference.route}, median of {args.repeats}", flush=True)

        class Series:  # what predict_mask reads of an ImageSeries
            pass

        series: Any = Series()
        series.volume, series.affine = volume, affine
        ours_s, ours = timed(lambda: pipeline.predict_mask(series), args.repeats)
        print(f"  ours (fast path):                  {ours_s:8.3f} s", flush=True)
        reference = monai_alone(bundle_dir, device)
        monai_s, theirs = timed(lambda: reference(volume, affine), args.repeats)
        print(f"  MONAI alone (Compose+SWI+Invertd): {monai_s:8.3f} s", flush=True)
    agree = float((ours == theirs).mean())
    print(f"  ratio MONAI / ours: {monai_s / ours_s:.2f}x; label maps agree on {agree:.6%} of "
          f"{ours.size} voxels ({int(ours.sum())} vs {int(theirs.sum())} foreground)")
    return 0 if agree > 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
