"""Serving latency through the real TorchServe stack, side by side with the same pipeline in-process.

Cold start: launcher process start -> /ping 200 -> the worker READY -> first SEG answered, and the first
request against the warm ones, with the servers' warm-up (the default) and without it (SERVING_WARMUP=0),
``--cold-starts`` times each (alternating), medians printed. Where the first request's extra time went: each
request's stages from the worker log (the handler logs one line per request) against the client's time, the
rest being outside the handler (TorchServe's frontend, the transfer to the worker, the toolkit).
Per request: a 48x512x512 CT series
(zip, ~25 MB) posted to /invocations with Accept: application/dicom, sequentially. The in-process column
runs the handler functions on the same zip in this process: the ratio is what the server stack costs.

    .venv/bin/python benchmarks/serving.py                  # untrained contract UNet (real compute)
    .venv/bin/python benchmarks/serving.py --model threshold --requests 5
    .venv/bin/python benchmarks/serving.py --model threshold --cold-only --cold-starts 5   # cold start only

Contention (``--contention 0 2 8``): TorchServe with the old settings (a worker per core, torch threads =
cores) and the new (model_code/core/threads.py), each loaded by ``--clients`` concurrent clients while
0, 2, 8 busy processes (started here, stopped by PID) spin on the machine; prints requests/s, p50 and p95
per setting and the new/old ratios, medians over ``--rounds``.

    .venv/bin/python benchmarks/serving.py --model threshold --contention 0 2 8 --clients 4 --requests 8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.series import series_zip
from testkit.servers import ServerProcess, get, invoke, start_torchserve


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


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[list[int]]:
    """``count`` processes spinning on a core each (other work on the machine); stopped by PID at the end."""
    processes = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def load(url: str, payload: bytes, *, clients: int, requests: int) -> tuple[float, float, float]:
    """(requests/s, p50 s, p95 s) of ``requests`` SEG requests from ``clients`` concurrent clients."""

    def one(index: int) -> float:
        start = time.perf_counter()
        status, _, body = invoke(url, payload, content_type="application/zip", accept="application/dicom",
                                 timeout_s=1800)
        if status != 200:
            raise SystemExit(f"request answered {status}: {body[:500]!r}")
        return time.perf_counter() - start

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    return requests / wall, statistics.median(latencies), percentile(latencies, 0.95)


def contention(args: argparse.Namespace, series_payload: bytes) -> None:
    from model_code.core.settings import ServerSettings
    from model_code.core.threads import machine_vcpus, server_plan

    cores = machine_vcpus()
    new = server_plan(ServerSettings(device="cpu"), gpus=0)
    # Before issue 19: the toolkit's default of a worker per core, and torch's default of a thread per core.
    settings = {"old": (cores, cores), "new": (new.workers, new.threads)}
    # results[setting][busy] = [(req/s, p50, p95) per round]
    results: dict[str, dict[int, list[tuple[float, float, float]]]] = {k: {b: [] for b in args.contention}
                                                                      for k in settings}
    with tempfile.TemporaryDirectory(prefix="bench-contention-") as scratch:
        model_dir = make_model(args.model, Path(scratch) / "model")
        for round_index in range(args.rounds):
            for name, (workers, threads) in settings.items():
                server = start_torchserve(
                    model_dir, Path(scratch) / f"run-{name}-{round_index}", workers=workers,
                    env={"SERVING_INTRA_OP_THREADS": str(threads), "SERVING_DEVICE": "cpu"}, timeout_s=600,
                )
                try:
                    wait_for_workers(server, workers)
                    load(server.url, series_payload, clients=1, requests=workers)  # every worker warm
                    for busy in args.contention:
                        with busy_processes(busy):
                            figures = load(server.url, series_payload, clients=args.clients, requests=args.requests)
                        results[name][busy].append(figures)
                        print(f"round {round_index + 1} {name} ({workers} workers x {threads} threads), {busy} busy: "
                              f"{figures[0]:.2f} req/s, p50 {figures[1]:.2f} s, p95 {figures[2]:.2f} s", flush=True)
                finally:
                    server.stop()

    def median_of(name: str, busy: int, index: int) -> float:
        return statistics.median(r[index] for r in results[name][busy])

    print(f"contention: {args.clients} concurrent clients, {args.requests} requests per point, medians of "
          f"{args.rounds} round(s); old = {cores} workers x {cores} threads, new = {new.workers} x {new.threads}")
    print(f"{'busy':>5} | {'old req/s':>9} {'p50':>7} {'p95':>7} | {'new req/s':>9} {'p50':>7} {'p95':>7} | "
          f"{'req/s new/old':>13} {'p95 old/new':>11}")
    for busy in args.contention:
        old = [median_of("old", busy, i) for i in range(3)]
        fresh = [median_of("new", busy, i) for i in range(3)]
        print(f"{busy:>5} | {old[0]:>9.2f} {old[1]:>7.2f} {old[2]:>7.2f} | {fresh[0]:>9.2f} {fresh[1]:>7.2f} "
              f"{fresh[2]:>7.2f} | {fresh[0] / old[0]:>12.2f}x {old[2] / fresh[2]:>10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["unet", "threshold"], default="unet")
    parser.add_argument("--requests", type=int, default=3, help="timed requests after the first (per point)")
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 512, 512], metavar=("SLICES", "ROWS", "COLS"))
    parser.add_argument("--contention", type=int, nargs="+", default=None, metavar="BUSY",
                        help="contention mode: busy-process counts to load the server under (e.g. 0 2 8)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (contention mode)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds to take medians over (contention mode)")
    parser.add_argument("--cold-starts", type=int, default=3, help="cold starts per setting (medians printed)")
    parser.add_argument("--cold-only", action="store_true", help="only the cold starts, not the per-request part")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads, in-process and in the worker (0: this process's default)")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    series = series_zip(shape=tuple(args.shape), spacing=(2.5, 0.8, 0.8), seed=0)  # type: ignore[arg-type]
    print(f"series: {'x'.join(map(str, args.shape))} CT, zip {len(series.payload) / 1e6:.1f} MB; model: {args.model}")
    if args.contention is not None:
        contention(args, series.payload)
        return

    print(f"load average at start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        model_dir = make_model(args.model, Path(scratch) / "model")
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        local: list[float] = []
        if not args.cold_only:
            local = in_process(model_dir, series.payload, args.requests)
        # Through TorchServe: one worker, as one request at a time is what a latency figure means; with the
        # warm-up (the default) and without it (SERVING_WARMUP=0, as before issue 19), alternating so that the
        # machine's load moves both alike. The worker gets this process's torch threads: the ratio compares
        # the stacks, not thread counts.
        threads = torch.get_num_threads()
        cold: dict[bool, list[ColdStart]] = {True: [], False: []}
        for index in range(args.cold_starts):
            for warm in (True, False):
                figures = cold_start(model_dir, Path(scratch) / f"run-{int(warm)}-{index}", series.payload,
                                     args.requests, warm=warm, threads=threads)
                cold[warm].append(figures)
                print(f"cold start {index + 1} {'with' if warm else 'without'} warm-up: first "
                      f"{figures.first_request:.2f} s, warm median {statistics.median(figures.served):.2f} s, "
                      f"{figures.ratio:.2f}x (load {load_average()})", flush=True)

    print(f"{'cold start (s after launch)':<30}{'/ping 200':>10}{'worker READY':>13}{'first SEG':>10}"
          f"{'first request':>14}{'warm median':>12}{'first/warm':>11}{'warm-up':>9}{'frontend':>9}")
    for warm, runs in cold.items():
        name = "with warm-up" if warm else "without (SERVING_WARMUP=0)"

        def median(field: str, of: list[ColdStart] = runs) -> float:
            return statistics.median(getattr(figures, field) for figures in of)

        warm_up = f"{median('warm_up_s'):>8.2f}s{median('frontend_warm_up_s'):>8.2f}s" if warm else f"{'-':>9}{'-':>9}"
        print(f"{name:<30}{median('ping'):>10.1f}{median('ready'):>13.1f}{median('first_seg'):>10.1f}"
              f"{median('first_request'):>14.2f}{median('warm_median'):>12.2f}{median('ratio'):>10.2f}x{warm_up}")
    print(f"first/warm per cold start: with {[round(c.ratio, 2) for c in cold[True]]}, "
          f"without {[round(c.ratio, 2) for c in cold[False]]} (medians of {args.cold_starts}, "
          f"{args.requests} warm requests each)")
    print_stages(cold[True])
    print(f"load average at end: {load_average()}")
    if local:
        served = [seconds for figures in cold[True] for seconds in figures.served]
        print(f"{'per request (s)':<18}{'median':>9}{'min':>9}{'max':>9}   (n={len(local)} / {len(served)})")
        for name, values in (("in-process", local), ("TorchServe", served)):
            print(f"{name:<18}{statistics.median(values):>9.2f}{min(values):>9.2f}{max(values):>9.2f}")
        print(f"TorchServe / in-process (median): {statistics.median(served) / statistics.median(local):.2f}x")


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def in_process(model_dir: Path, payload: bytes, requests: int) -> list[float]:
    """The same handler functions, no server: model_fn (with its warm-up), one request, then the timed ones."""
    from model_code.serving.handler import input_fn, model_fn, output_fn, predict_fn

    model = model_fn(str(model_dir))
    output_fn(predict_fn(input_fn(payload, "application/zip"), model), "application/dicom")
    local = []
    for _ in range(requests):
        start = time.perf_counter()
        output_fn(predict_fn(input_fn(payload, "application/zip"), model), "application/dicom")
        local.append(time.perf_counter() - start)
    return local


# The handler's line per request (model_code/serving/handler.py) and its warm-up line, in the worker log.
STAGES_LINE = re.compile(r"request stages \(s\), status (\d+): (.*)$", re.MULTILINE)
WARMED_LINE = re.compile(r"warmed up in ([0-9.]+) s")
FRONTEND_WARMED_LINE = re.compile(r"frontend warmed up in (\d+) ms")
OUTSIDE = "outside the handler"


def request_stages(model_log: str, count: int) -> list[dict[str, float]]:
    """The last ``count`` requests' stages from the worker log (the warm-up's, logged before, are left out)."""
    # 200s only: the frontend's own warm-up request (ts-plugins/TruthfulPing.java) is answered 400.
    lines = [fields for status, fields in STAGES_LINE.findall(model_log) if status == "200"]
    if len(lines) < count:
        raise SystemExit(f"the worker log has {len(lines)} request stage lines answered 200, expected >= {count}")
    return [{name: float(value) for name, value in (field.split("=") for field in fields.split())}
            for fields in lines[-count:]]


def print_stages(runs: list[ColdStart]) -> None:
    """Median per stage: the first request, the warm ones, and the difference (what the first one paid)."""
    names = [OUTSIDE, *runs[0].stages[0]]
    print(f"where the time went, with warm-up (medians over {len(runs)} cold starts; {OUTSIDE} = client time less "
          "input_fn + predict_fn + output_fn: TorchServe's frontend, the transfer, the toolkit)")
    print(f"{'stage (s)':<22}{'first':>8}{'warm':>8}{'first-warm':>12}")
    for name in names:
        first = statistics.median(run.stage(0, name) for run in runs)
        warm = statistics.median(statistics.median(run.stage(i, name) for i in range(1, len(run.stages)))
                                 for run in runs)
        print(f"{name:<22}{first:>8.3f}{warm:>8.3f}{first - warm:>+12.3f}")


def wait_for_workers(server: ServerProcess, count: int, timeout_s: float = 900) -> None:
    """Until ``count`` workers are READY (management API): /ping alone may answer before any worker can."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, _, body = get(f"{server.url}/models/model")
        if status == 200 and [w["status"] for w in json.loads(body)[0]["workers"]] == ["READY"] * count:
            return
        time.sleep(0.05)
    raise SystemExit(f"{count} workers were not READY within {timeout_s:.0f} s:\n{server.logs()}")


@dataclass(frozen=True)
class ColdStart:
    ping: float  # launch -> /ping 200
    ready: float  # launch -> the worker READY (management API)
    first_seg: float  # launch -> the first SEG answered
    first_request: float  # the first request alone
    served: list[float]  # the requests after it
    stages: list[dict[str, float]]  # per request (the first, then the served ones): the worker log's stages
    warm_up_s: float  # the worker's warm-up, as it logged it (0 without)
    frontend_warm_up_s: float  # the frontend's request of its own before /ping 200 (ts_log; 0 without)

    @property
    def warm_median(self) -> float:
        return statistics.median(self.served)

    @property
    def ratio(self) -> float:
        return self.first_request / self.warm_median

    def stage(self, index: int, name: str) -> float:
        if name == OUTSIDE:
            client = [self.first_request, *self.served][index]
            handler = self.stages[index]
            return client - handler["input_fn"] - handler["predict_fn"] - handler["output_fn"]
        return self.stages[index][name]


def cold_start(model_dir: Path, run_dir: Path, payload: bytes, requests: int, *, warm: bool,
               threads: int) -> ColdStart:
    started = time.perf_counter()
    server = start_torchserve(model_dir, run_dir, workers=1, timeout_s=600,
                              env={"SERVING_WARMUP": "1" if warm else "0", "SERVING_DEVICE": "cpu",
                                   "SERVING_INTRA_OP_THREADS": str(threads)})
    ping = time.perf_counter() - started
    try:
        wait_for_workers(server, 1)
        ready = time.perf_counter() - started

        def one() -> float:
            start = time.perf_counter()
            status, _, body = invoke(server.url, payload, content_type="application/zip", accept="application/dicom",
                                     timeout_s=1800)
            if status != 200:
                raise SystemExit(f"request answered {status}: {body[:500]!r}\n{server.logs()}")
            return time.perf_counter() - start

        first_request = one()
        first_seg = time.perf_counter() - started
        served = [one() for _ in range(requests)]
        model_log = worker_log(server, count=1 + requests)
        ts_log = (server.logs_dir / "ts_log.log").read_text(errors="replace")  # type: ignore[operator]
    finally:
        server.stop()
    frontend = FRONTEND_WARMED_LINE.search(ts_log)
    warmed = WARMED_LINE.search(model_log)
    if warm and warmed is None:
        raise SystemExit(f"the worker did not log its warm-up:\n{model_log[-3000:]}")
    return ColdStart(ping, ready, first_seg, first_request, served, request_stages(model_log, 1 + requests),
                     float(warmed.group(1)) if warmed else 0.0, int(frontend.group(1)) / 1000 if frontend else 0.0)


def answered(model_log: str) -> int:
    return sum(1 for status, _ in STAGES_LINE.findall(model_log) if status == "200")


def worker_log(server: ServerProcess, *, count: int, timeout_s: float = 30) -> str:
    """The worker log once it holds the stage lines of ``count`` requests after the warm-up's: the frontend
    copies the worker's stdout into it on a thread of its own, a moment after the answer."""
    assert server.logs_dir is not None
    path = server.logs_dir / "model_log.log"
    deadline = time.monotonic() + timeout_s
    while True:
        text = path.read_text(errors="replace") if path.is_file() else ""
        warm_up = text.split("warmed up in")[0] if "warmed up in" in text else ""
        if answered(text) >= answered(warm_up) + count or time.monotonic() > deadline:
            return text
        time.sleep(0.1)

if __name__ == "__main__":
    main()
