"""Run the PyTorch inference container's serving stack on 127.0.0.1, without Docker (``make serve``).

The same pieces the SageMaker PyTorch inference DLC runs: TorchServe with the sagemaker-pytorch-inference
handler service, configured by that toolkit's own properties generator, loading ``code/inference.py``.
What differs from ``serve`` in the container, and why:

* every address is bound to 127.0.0.1 (the toolkit binds 0.0.0.0), on ports derived from ``--port``;
* the workers import from the image's own tree, staged into the run folder from the Dockerfile's COPY lines
  (``testkit.images``), not from the work tree: a module the image does not copy fails here as it would there;
* the toolkit's properties files lack a trailing newline, so appending to them glues two keys together;
* each run has its own folder (properties, logs, TMPDIR, java.io.tmpdir): TorchServe keeps its pid file in
  TMPDIR and its worker sockets in java.io.tmpdir, so two servers on one machine would otherwise collide;
* the launcher owns the TorchServe process (``--foreground``) instead of the toolkit's process scan, which
  refuses to run when any other TorchServe runs on the machine;
* the frontend plugins (``ts-plugins/``: the truthful ``/ping``) are compiled once into ``build/ts-plugins/``
  by the same ``build.sh`` the image build runs, and ``plugins_path`` names that folder instead of
  ``/opt/ts-plugins`` (the image appends it to the toolkit's properties file; here it is appended to ours).

Derived ports: inference and management on PORT (as SageMaker), metrics PORT+1, gRPC PORT+2 and PORT+3,
worker sockets from PORT+1000.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DOCKERFILE = HERE / "Dockerfile"
PLUGINS_SOURCE = HERE / "ts-plugins"
# Where the image build puts the plugins jar (Dockerfile); `plugins_path` in TorchServe's properties names it.
IMAGE_PLUGINS_DIR = "/opt/ts-plugins"
# The Dockerfile's WORKDIR-free layout: PYTHONPATH=/opt/program holds code/ and model_code.
PROGRAM_DIR = "/opt/program"
HANDLER_SERVICE = "sagemaker_pytorch_serving_container.handler_service"
# The largest async-inference payload SageMaker accepts (1 GB); TorchServe's default is 6.5 MB.
MAX_PAYLOAD_BYTES = 1024**3
# Model server timeout (s): one CPU inference of a large series takes minutes, the toolkit default is 60.
DEFAULT_TIMEOUT_S = 900
# The settings the container image sets with ENV, shared with the Dockerfile (tests compare the two).
CONTAINER_ENV = {
    "SAGEMAKER_PROGRAM": "inference.py",
    # the toolkit's handler service behind a guard for non-UTF-8 JSON (code/monai_handler_service.py)
    "TS_DEFAULT_SERVICE_HANDLER": "monai_handler_service:handle",
    "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(DEFAULT_TIMEOUT_S),
    "TS_MAX_REQUEST_SIZE": str(MAX_PAYLOAD_BYTES),
    "TS_MAX_RESPONSE_SIZE": str(MAX_PAYLOAD_BYTES),
}


def toolkit_properties(port: int, workers: int | None) -> str:
    """The properties the toolkit's ``serve`` writes to /etc/sagemaker-ts.properties, fixed for loopback."""
    os.environ["SAGEMAKER_BIND_TO_PORT"] = str(port)
    if workers is not None:
        os.environ["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    from sagemaker_inference import utils
    from sagemaker_pytorch_serving_container import torchserve

    generated = torchserve._generate_ts_config_properties(HANDLER_SERVICE)
    base_file = torchserve.MME_TS_CONFIG_FILE if torchserve.ENABLE_MULTI_MODEL else torchserve.DEFAULT_TS_CONFIG_FILE
    base = utils.read_file(base_file)
    if generated.startswith(base) and not base.endswith("\n"):
        # default-ts.properties / mme-ts.properties end without a newline: "enable_model_api=true" would
        # swallow the first generated key ("...=truedefault_response_timeout=60").
        generated = base + "\n" + generated[len(base) :]
    return generated.replace("http://0.0.0.0:", "http://127.0.0.1:")


def build_plugins(build_root: Path = REPO_ROOT / "build" / "ts-plugins") -> Path:
    """The plugins jar's folder, compiled by ts-plugins/build.sh once per source version and TorchServe version."""
    from importlib.metadata import version

    digest = hashlib.sha256(version("torchserve").encode())
    for path in sorted(p for p in PLUGINS_SOURCE.rglob("*") if p.is_file()):
        digest.update(path.relative_to(PLUGINS_SOURCE).as_posix().encode() + b"\0" + path.read_bytes())
    out_dir = build_root / digest.hexdigest()[:16]
    if not (out_dir / "monai-ts-plugins.jar").is_file():
        completed = subprocess.run(
            ["bash", str(PLUGINS_SOURCE / "build.sh"), str(out_dir), sys.executable],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise SystemExit(f"building the TorchServe plugins failed:\n{completed.stdout}{completed.stderr}")
    return out_dir


def write_run_dir(run_dir: Path, *, port: int, workers: int | None, plugins_dir: Path) -> Path:
    for sub in ("logs", "tmp", "model-store"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    properties = toolkit_properties(port, workers)
    properties += (
        f"plugins_path={plugins_dir}\n"
        f"vmargs=-XX:-UseContainerSupport -Djava.io.tmpdir={run_dir / 'tmp'}\n"
        f"metrics_address=http://127.0.0.1:{port + 1}\n"
        "grpc_inference_address=127.0.0.1\n"
        "grpc_management_address=127.0.0.1\n"
        f"grpc_inference_port={port + 2}\n"
        f"grpc_management_port={port + 3}\n"
        f"initial_worker_port={port + 1000}\n"
    )
    config = run_dir / "config.properties"
    config.write_text(properties)
    return config


def serve_command(model_dir: Path, config: Path, run_dir: Path) -> list[str]:
    from sagemaker_pytorch_serving_container import torchserve

    executable = shutil.which("torchserve", path=str(Path(sys.executable).parent)) or "torchserve"
    return [
        executable,
        "--start",
        "--foreground",
        "--ncs",  # no config snapshots: each run starts from its own properties
        "--model-store",
        str(run_dir / "model-store"),
        "--ts-config",
        str(config),
        "--log-config",
        torchserve.DEFAULT_TS_LOG_FILE,
        "--models",
        f"{torchserve.DEFAULT_TS_MODEL_NAME}={model_dir}",
    ]


def serving_environment(run_dir: Path) -> dict[str, str]:
    from testkit.images import stage_image

    # As in the image: its ENV values, unless the caller set one (docker run -e wins over ENV too).
    env = {**CONTAINER_ENV, **os.environ}
    # As in the image, PYTHONPATH is the program folder alone: what the Dockerfile copies there, nothing else.
    env["PYTHONPATH"] = str(stage_image(DOCKERFILE, PROGRAM_DIR, run_dir / "program"))
    env["TMPDIR"] = str(run_dir / "tmp")
    env["LOG_LOCATION"] = str(run_dir / "logs")
    env["METRICS_LOCATION"] = str(run_dir / "logs")
    # The torchserve launcher looks java up on PATH and workers start from this venv's python.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="a MONAI bundle: directory, .zip or model.tar.gz (default: see doc)")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: workers x threads <= CPUs, see "
        "model_code/core/threads.py)"
    )
    parser.add_argument("--run-dir", type=Path, default=None, help="properties, logs, temp (default: a new one)")
    args = parser.parse_args(argv)
    if not 1024 <= args.port <= 64000:
        parser.error(f"--port must be within 1024..64000 (it derives ports up to PORT+1000), got {args.port}")

    sys.path.insert(0, str(REPO_ROOT))
    from testkit.local_model import resolve_model_dir

    model_dir = resolve_model_dir(args.model_dir)
    run_dir = (args.run_dir or Path(tempfile.mkdtemp(prefix="torchserve-"))).resolve()
    plugins_dir = build_plugins()  # before TMPDIR points into the run folder (build.sh's mktemp uses it)
    environment = serving_environment(run_dir)
    # The toolkit's properties generator reads the same environment (timeout, workers) as the container's.
    os.environ.update(environment)
    # The container's rule where the stack sets nothing: the workers here, each worker's threads in model_fn.
    from model_code.core.settings import ServerSettings
    from model_code.core.threads import server_plan
    from model_code.segmentation.threads import machine_gpus

    workers = args.workers or server_plan(ServerSettings.from_env(), gpus=machine_gpus()).workers
    config = write_run_dir(run_dir, port=args.port, workers=workers, plugins_dir=plugins_dir)
    command = serve_command(model_dir, config, run_dir)
    print(f"serving {model_dir} on http://127.0.0.1:{args.port} (/ping, /invocations); logs in {run_dir / 'logs'}")
    sys.stdout.flush()
    os.chdir(run_dir)
    # exec: signals (Ctrl-C, a test stopping the process group) reach the TorchServe launcher directly.
    os.execve(command[0], command, dict(os.environ))  # noqa: S606 - argument list built above


if __name__ == "__main__":
    main()
