"""Peak memory of one SageMaker-handler request, per slice, against the stored pixels, old code against new.

Each measurement runs in a fresh interpreter (the handler's model_fn/input_fn/predict_fn/output_fn, the
model loaded and one small series segmented first, so imports and one-time tables are in the base), then
resets the peak RSS (``/proc/self/clear_refs``: 5) and answers one zip request of an N x 512 x 512 CT series
with its SEG. Printed per model and slice count: peak RSS above that base, per slice, as a multiple of the
series' stored pixel bytes (N x 512 x 512 x 2), and the RSS the request left behind. The baseline is the same
measurement on the tree of ``--baseline-ref`` (``git archive`` into a temporary folder: no worktree, nothing
in the repository changes), run with this checkout's venv.

``--stages`` prints, for this checkout only, where the peak sits: the RSS on entry to each stage of the request
(read the zip, decode, model grid, scaling, sliding window, inverse, SEG, its bytes) and its peak inside it
(a thread samples /proc/self/statm every 0.5 ms while the stage runs), as multiples of the stored pixels.
``--float-rescale`` moves every slice's RescaleIntercept by 0.5 HU, so the loader keeps a float32 volume
(the series whose rescale is not an integer shift).

    .venv/bin/python benchmarks/serving_memory.py --baseline-ref 615ac96
    .venv/bin/python benchmarks/serving_memory.py --baseline-ref main --slices 48 96 --models threshold
    .venv/bin/python benchmarks/serving_memory.py --stages --slices 192 300 --models threshold
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

MIB = 1 << 20

# Runs in the tree under test (its own model_code and testkit on sys.path); prints one JSON line.
CHILD = r"""
import gc, json, sys, time
from pathlib import Path

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)

model_dir, zip_path, stages = sys.argv[1], sys.argv[2], sys.argv[3] == "stages"
from model_code.serving.handler import input_fn, model_fn, output_fn, predict_fn
from testkit.series import series_zip

# --stages: each stage function wrapped where the request flow looks it up; a sampler thread keeps its peak.
import functools, importlib, threading
current, entered, peaks, sampling = ["request"], {}, {}, [False]
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096
def sample():
    while sampling[0]:
        peaks[current[0]] = max(peaks.get(current[0], 0), rss())
        time.sleep(0.0005)
def wrap(module, name, label, *users):
    original = getattr(importlib.import_module(module), name)
    @functools.wraps(original)
    def staged(*args, **kwargs):
        outer, current[0] = current[0], label
        if sampling[0]:
            entered.setdefault(label, rss())
        try:
            return original(*args, **kwargs)
        finally:
            if sampling[0]:
                peaks[label] = max(peaks.get(label, 0), rss())
            current[0] = outer
    for user in (module, *users):
        if getattr(importlib.import_module(user), name, None) is original:
            setattr(importlib.import_module(user), name, staged)
STAGES = [
    ("model_code.core.dicom.files", "_read_all", "read the zip"),
    ("model_code.core.dicom.files", "series_from_datasets", "decode"),
    ("model_code.segmentation.transforms_torch", "to_model_grid", "model grid"),
    ("model_code.segmentation.transforms_torch", "scale_intensity", "scaling"),
    ("model_code.segmentation.transforms_torch", "foreground_probability", "sliding window"),
    ("model_code.segmentation.transforms_torch", "mask_from_model_grid", "inverse"),
    ("model_code.core.dicom.seg", "build_segmentation", "SEG"),
    ("model_code.core.service", "dataset_bytes", "SEG bytes"),
]
USERS = ("model_code.segmentation.pipeline", "model_code.segmentation.bundle_inference")
if stages:
    for module, name, label in STAGES:
        wrap(module, name, label, *USERS)

model = model_fn(model_dir)
small = series_zip(shape=(16, 48, 48), seed=1).payload
for _ in range(2):  # imports, highdicom's tables, TorchScript's first runs: the base, not the request
    output_fn(predict_fn(input_fn(small, "application/zip"), model), "application/dicom")
del small
gc.collect()
base = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
payload = Path(zip_path).read_bytes()  # the request body the server hands the handler: the request's own
sampler = threading.Thread(target=sample, daemon=True)
if stages:
    sampling[0] = True
    sampler.start()
started = time.perf_counter()
body, content_type = output_fn(predict_fn(input_fn(payload, "application/zip"), model), "application/dicom")
seconds = time.perf_counter() - started
sampling[0] = False
if stages:
    sampler.join()
peak = status("VmHWM")
assert content_type == "application/dicom", body[:300]
del body, payload
gc.collect()
stage_peaks = {label: [entered[label], peaks[label]] for _, _, label in STAGES if label in entered}
print(json.dumps({"base": base, "peak": peak, "after": status("VmRSS"), "seconds": seconds, "stages": stage_peaks}))
"""


def measure(tree: Path, model_dir: Path, zip_path: Path, *, stages: bool = False) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "SERVING_WARMUP": "0",  # both trees warm up the same way: the two small requests above
        "SERVING_DEVICE": "cpu",
        "SERVING_INTRA_OP_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(model_dir), str(zip_path), "stages" if stages else "total"],
        cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=3600,
    )
    if completed.returncode != 0:
        raise SystemExit(f"measurement in {tree} failed:\n{completed.stderr[-4000:]}")
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def baseline_tree(ref: str, folder: Path) -> tuple[Path, str]:
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = folder / "baseline.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), commit], cwd=REPO_ROOT, check=True)
    tree = folder / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree, commit


def float_rescaled(payload: bytes) -> bytes:
    """The series zip with every slice's RescaleIntercept moved by 0.5 HU: not an integer shift, so float32."""
    import io
    import zipfile

    import pydicom

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            dataset = pydicom.dcmread(io.BytesIO(source.read(info)))
            dataset.RescaleIntercept = str(float(dataset.get("RescaleIntercept", 0)) + 0.5)
            member = io.BytesIO()
            dataset.save_as(member, enforce_file_format=True)
            target.writestr(info.filename, member.getvalue())
    return out.getvalue()


def print_stages(name: str, slices: int, stored: int, result: dict[str, Any]) -> None:
    base = result["base"]
    cells = "  ".join(f"{label} {(entered - base) / stored:.2f}->{(peak - base) / stored:.2f}"
                      for label, (entered, peak) in result["stages"].items())
    print(f"{name:<10}{slices:>7} | peak {(result['peak'] - base) / stored:.2f}x | {cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="main", help="git ref of the old code (default: main)")
    parser.add_argument("--slices", type=int, nargs="+", default=[48, 96, 192, 300])
    parser.add_argument("--models", nargs="+", choices=["threshold", "unet"], default=["threshold", "unet"])
    parser.add_argument("--stages", action="store_true",
                        help="this checkout only: RSS on entry to each stage -> its peak, x stored pixels")
    parser.add_argument("--float-rescale", action="store_true",
                        help="RescaleIntercept moved by 0.5 HU on every slice: the loader keeps float32")
    args = parser.parse_args()

    from testkit.models import save_threshold_model, save_untrained_unet
    from testkit.series import series_zip

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        folder = Path(scratch)
        models = {
            "threshold": lambda: save_threshold_model(folder / "threshold"),
            "unet": lambda: save_untrained_unet(folder / "unet", seed=0),
        }

        def series(slices: int) -> Path:
            zip_path = folder / f"series-{slices}.zip"
            if not zip_path.exists():
                payload = series_zip(shape=(slices, 512, 512), spacing=(2.5, 0.8, 0.8), seed=0).payload
                zip_path.write_bytes(float_rescaled(payload) if args.float_rescale else payload)
            return zip_path

        if args.stages:
            print("this checkout, one request per fresh interpreter, torch threads 1; per stage: RSS on entry -> "
                  "peak inside it, above the base, x stored pixels (slices x 512 x 512 x 2 bytes)")
            for name in args.models:
                model_dir = models[name]()
                for slices in args.slices:
                    print_stages(name, slices, slices * 512 * 512 * 2,
                                 measure(REPO_ROOT, model_dir, series(slices), stages=True))
            return
        old_tree, commit = baseline_tree(args.baseline_ref, folder)
        print(f"old: {args.baseline_ref} ({commit}); new: this checkout; one request per fresh interpreter, "
              "torch threads 1")
        print(f"{'model':<10}{'slices':>7}{'stored MiB':>11} | {'old peak':>9}{'new peak':>9}{'new/old':>8} | "
              f"{'MiB/slice old':>14}{'new':>6} | {'x stored old':>13}{'new':>6} | {'kept old':>9}{'new':>6}")
        for name in args.models:
            model_dir = models[name]()
            for slices in args.slices:
                zip_path = series(slices)
                stored = slices * 512 * 512 * 2
                old = measure(old_tree, model_dir, zip_path)
                new = measure(REPO_ROOT, model_dir, zip_path)
                old_peak, new_peak = old["peak"] - old["base"], new["peak"] - new["base"]
                print(f"{name:<10}{slices:>7}{stored / MIB:>11.0f} | {old_peak / MIB:>9.0f}{new_peak / MIB:>9.0f}"
                      f"{new_peak / old_peak:>7.2f}x | {old_peak / MIB / slices:>14.2f}{new_peak / MIB / slices:>6.2f}"
                      f" | {old_peak / stored:>12.1f}x{new_peak / stored:>5.1f}x | "
                      f"{(old['after'] - old['base']) / MIB:>9.0f}{(new['after'] - new['base']) / MIB:>6.0f}",
                      flush=True)
        print("peak = VmHWM above the base (MiB); kept = RSS after the request above the base (MiB)")


if __name__ == "__main__":
    main()
