"""Serving latency through the real TorchServe stack, side by side with the same pipeline in-process.

Cold start: launcher process start -> /ping 200 -> first SEG answered. Per request: a 48x512x512 CT series
(zip, ~25 MB) posted to /invocations with Accept: application/dicom, sequentially. The in-process column
runs ServingModel.predict on the same zip in this process: the ratio is what the server stack costs.

    .venv/bin/python benchmarks/serving.py                  # untrained contract UNet (real compute)
    .venv/bin/python benchmarks/serving.py --model threshold --requests 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.series import series_zip
from testkit.servers import invoke, start_torchserve


def machine() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, torch threads {torch.get_num_threads()}"
    )


def make_model(kind: str, folder: Path) -> Path:
    from testkit.models import save_threshold_model, save_untrained_unet

    return save_threshold_model(folder) if kind == "threshold" else save_untrained_unet(folder, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["unet", "threshold"], default="unet")
    parser.add_argument("--requests", type=int, default=3, help="timed requests after the first")
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 512, 512], metavar=("SLICES", "ROWS", "COLS"))
    args = parser.parse_args()

    print(f"machine: {machine()}")
    series = series_zip(shape=tuple(args.shape), spacing=(2.5, 0.8, 0.8), seed=0)  # type: ignore[arg-type]
    print(f"series: {'x'.join(map(str, args.shape))} CT, zip {len(series.payload) / 1e6:.1f} MB; model: {args.model}")

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        model_dir = make_model(args.model, Path(scratch) / "model")

        # In-process: the same handler code, no server.
        from model_code.serving.handler import input_fn, model_fn, output_fn, predict_fn

        model = model_fn(str(model_dir))
        output_fn(predict_fn(input_fn(series.payload, "application/zip"), model), "application/dicom")  # warm-up
        local = []
        for _ in range(args.requests):
            start = time.perf_counter()
            output_fn(predict_fn(input_fn(series.payload, "application/zip"), model), "application/dicom")
            local.append(time.perf_counter() - start)
        del model

        # Through TorchServe: one worker, as one request at a time is what a latency figure means.
        started = time.perf_counter()
        server = start_torchserve(model_dir, Path(scratch) / "run", workers=1, timeout_s=300)
        ready = time.perf_counter() - started
        try:
            status, _, body = invoke(
                server.url, series.payload, content_type="application/zip", accept="application/dicom", timeout_s=1800
            )
            first = time.perf_counter() - started
            if status != 200:
                raise SystemExit(f"first request answered {status}: {body[:500]!r}\n{server.logs()}")
            served = []
            for _ in range(args.requests):
                start = time.perf_counter()
                status, _, body = invoke(
                    server.url,
                    series.payload,
                    content_type="application/zip",
                    accept="application/dicom",
                    timeout_s=1800,
                )
                served.append(time.perf_counter() - start)
                assert status == 200, body[:500]
        finally:
            server.stop()

    print(f"cold start: /ping ready {ready:.1f} s, first SEG {first:.1f} s after process start")
    print(f"{'per request (s)':<18}{'median':>9}{'min':>9}{'max':>9}   (n={args.requests})")
    for name, values in (("in-process", local), ("TorchServe", served)):
        print(f"{name:<18}{statistics.median(values):>9.2f}{min(values):>9.2f}{max(values):>9.2f}")
    print(f"TorchServe / in-process (median): {statistics.median(served) / statistics.median(local):.2f}x")


if __name__ == "__main__":
    main()
