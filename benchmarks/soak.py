"""Soak: N minutes of mixed valid and invalid requests against a real server, RSS of every server process sampled.

Starts TorchServe (``make serve``'s launcher, a threshold model) or the edge runner (an ONNX bundle exported from
the pooled-threshold model, in process) on 127.0.0.1, then ``--clients`` threads post for ``--minutes``:
``--valid-share`` of the requests are valid series zips (each checked: its SEG references its own series), the
rest are drawn from issue 20's bad-input table (each checked: the status the table expects). Every
``--sample-s`` seconds it records the RSS of each process of the server (TorchServe: the Java frontend and its
Python workers, found by process group).

Prints: requests and throughput, counts by status, wrong answers (must be 0), and per process the RSS at the
first sample after warm-up, the last, and the growth per 1,000 requests (a least-squares slope).

    .venv/bin/python benchmarks/soak.py --minutes 5 --clients 4            # TorchServe
    .venv/bin/python benchmarks/soak.py --server edge --minutes 2           # the edge runner
    make soak SOAK_ARGS="--minutes 10 --clients 6"
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.bad_inputs import BAD_INPUTS, ZIP_BAD_INPUTS, BadInput
from testkit.series import SeriesZip, series_zip
from testkit.servers import invoke, server_processes


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` from /proc (KiB); None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, wrong: str | None) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.done += 1
            if wrong is not None and len(self.wrong) < 20:
                self.wrong.append(wrong)


def check_valid(item: SeriesZip, status: int, body: bytes) -> str | None:
    import highdicom as hd

    if status != 200:
        return f"valid series answered {status}: {body[:200]!r}"
    seg = hd.seg.segread(io.BytesIO(body))
    if seg.ReferencedSeriesSequence[0].SeriesInstanceUID != item.series_instance_uid:
        return "a SEG came back for another request's series"
    return None


def client(url: str, valid: list[SeriesZip], invalid: list[tuple[BadInput, bytes]], share: float, stop: float,
           seed: int, tally: Tally) -> None:
    chooser = random.Random(seed)
    while time.monotonic() < stop:
        if chooser.random() < share:
            item = chooser.choice(valid)
            status, _, body = invoke(url, item.payload, content_type="application/zip", accept="application/dicom",
                                     timeout_s=300)
            tally.record(status, check_valid(item, status, body))
        else:
            case, payload = chooser.choice(invalid)
            status, _, body = invoke(url, payload, content_type=case.content_type, accept=case.accept,
                                     timeout_s=300)
            wrong = None if status == case.status else f"{case.name} answered {status}, expected {case.status}"
            tally.record(status, wrong)


@contextlib.contextmanager
def torchserve(workers: int) -> Iterator[tuple[str, Callable[[], dict[int, str]]]]:
    from testkit.models import save_threshold_model
    from testkit.servers import running, start_torchserve

    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        model = save_threshold_model(Path(folder) / "model")
        with running(start_torchserve(model, Path(folder) / "run", workers=workers)) as server:
            yield server.url, lambda: server_processes(server)


@contextlib.contextmanager
def edge() -> Iterator[tuple[str, Callable[[], dict[int, str]]]]:
    from model_code.edge.engine import EdgeModel
    from model_code.edge.layout import BundleFormat
    from model_code.edge.runner import RunnerLimits
    from model_code.export.bundle import export_bundle
    from testkit.edge import serve
    from testkit.models import save_pooled_threshold_model

    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        model_dir = save_pooled_threshold_model(Path(folder) / "model")
        bundle = export_bundle(model_dir, Path(folder) / "bundle", fmt=BundleFormat.ONNX).bundle
        with serve(EdgeModel.load(bundle, threads=1), RunnerLimits(workers=2, queue=8)) as url:
            # The runner serves from this process: its RSS is this process's.
            yield url, lambda: {os.getpid(): "runner"}


def slope_per_1000(points: list[tuple[int, int]]) -> float:
    """Least-squares KiB per 1,000 requests over (requests done, RSS KiB) samples."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return 1000 * sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["torchserve", "edge"], default="torchserve")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="TorchServe workers")
    parser.add_argument("--valid-share", type=float, default=0.5)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=20.0, help="samples before this are not the baseline")
    args = parser.parse_args(argv)

    valid = [series_zip(shape=(12, 48, 48), seed=200 + n, patient_id=f"SOAK{n}") for n in range(6)]
    table = BAD_INPUTS if args.server == "torchserve" else ZIP_BAD_INPUTS
    # The one case that needs the loopback HealthImaging (an unknown image set) needs a server the soak does not run.
    invalid = [(case, case.build()) for case in table if case.name != "json-unknown-image-set"]
    server = torchserve(args.workers) if args.server == "torchserve" else edge()
    tally = Tally()
    samples: dict[int, list[tuple[float, int, int]]] = {}
    names: dict[int, str] = {}
    with server as (url, processes_now):
        started = time.monotonic()
        stop = started + 60 * args.minutes
        threads = [threading.Thread(target=client, args=(url, valid, invalid, args.valid_share, stop, n, tally))
                   for n in range(args.clients)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            for pid, name in processes_now().items():
                rss = rss_kib(pid)
                if rss is not None:
                    names[pid] = name
                    samples.setdefault(pid, []).append((time.monotonic() - started, tally.done, rss))
            time.sleep(args.sample_s)
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

    print(f"server {args.server}, {args.clients} clients, {args.minutes:g} min, valid share {args.valid_share:g}")
    print(f"requests {tally.done} in {elapsed:.0f} s: {tally.done / elapsed:.2f} requests/s")
    print("by status: " + ", ".join(f"{status}: {count}" for status, count in sorted(tally.statuses.items())))
    print(f"wrong answers: {len(tally.wrong)}" + "".join(f"\n  {line}" for line in tally.wrong))
    print("process      pid     RSS after warm-up  RSS at end   growth per 1,000 requests")
    for pid, points in sorted(samples.items()):
        steady = [(done, rss) for t, done, rss in points if t >= args.warmup_s] or [(d, r) for _, d, r in points]
        print(f"{names[pid]:10} {pid:7}   {steady[0][1] / 1024:10.1f} MiB  {steady[-1][1] / 1024:8.1f} MiB"
              f"   {slope_per_1000(steady) / 1024:+8.2f} MiB")
    return 1 if tally.wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
