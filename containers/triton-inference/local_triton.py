"""Run the tritonserver binary shipped in the nvidia-pytriton wheel on 127.0.0.1 (``make serve-triton``).

Run with .venv-triton's python (Debian's python3.11: the python backend stub links that libpython). The
launcher does what pytriton does before it starts the server, without pytriton's own model proxy:

* copies the python backend with the stub built for this interpreter into the run folder
  (``backends/python/triton_python_backend_stub``), since the wheel keeps one stub per Python version;
* puts the wheel's bundled libraries on LD_LIBRARY_PATH and this venv's ``bin`` first on PATH, so the stub's
  embedded interpreter finds the venv (torch, monai);
* stages the image's own tree (the Dockerfile's COPY lines, ``testkit.images``) into the run folder and makes it
  the whole PYTHONPATH, so the model imports only what the image carries;
* binds HTTP, gRPC and metrics to 127.0.0.1 and gives the python backend a shared-memory prefix of its own;
* runs tritonserver under the image's stub watchdog (``triton_watchdog.py``, beside this file), which reloads a
  model whose python stub died (the image's watchdog stops the server instead: see its docstring).

Model control is explicit by default: nothing loads until the repository API asks
(POST /v2/repository/models/<name>/load), which is how SageMaker's multi-model endpoint drives Triton.
Without --repository, a new repository holds the spleen model (--model-dir, else what `make demo` left,
else an untrained UNet bundle) as ``spleen_ct_segmentation``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DOCKERFILE = HERE / "Dockerfile"
WATCHDOG = HERE / "triton_watchdog.py"
SHIM = HERE / "watchdog-bin" / "tritonserver"  # the image's `tritonserver` on PATH
# What SageMaker's serve passes before its own options (server docker/sagemaker/serve): --as-image starts with them.
SERVE_OPTIONS = ("--allow-sagemaker=true", "--allow-http=false", "--model-control-mode=explicit")
PROGRAM_DIR = "/opt/program"  # the image's PYTHONPATH


def pytriton_dist() -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    dist = site / "pytriton" / "tritonserver"
    if not (dist / "bin" / "tritonserver").is_file():
        raise SystemExit(f"{dist} has no tritonserver: run this with .venv-triton/bin/python (make venv-triton)")
    return dist


def prepare_backends(run_dir: Path) -> Path:
    dist = pytriton_dist()
    backends = run_dir / "backends"
    shutil.copytree(dist / "backends", backends, dirs_exist_ok=True)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise SystemExit(f"nvidia-pytriton ships no python backend stub for Python {version}")
    target = backends / "python" / "triton_python_backend_stub"
    shutil.copy2(stub, target)
    target.chmod(0o755)
    return backends


def server_environment(run_dir: Path) -> dict[str, str]:
    from testkit.images import stage_image

    env = dict(os.environ)
    libs = Path(sysconfig.get_paths()["purelib"]) / "nvidia_pytriton.libs"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (env.get("LD_LIBRARY_PATH", ""), str(libs)) if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(stage_image(DOCKERFILE, PROGRAM_DIR, run_dir / "program"))
    return env


def server_command(
    *, repository: Path, backends: Path, http_port: int, grpc_port: int, metrics_port: int, explicit: bool
) -> list[str]:
    dist = pytriton_dist()
    command = [
        str(dist / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        f"--cache-directory={dist / 'caches'}",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        f"--backend-config=python,shm-region-prefix-name=triton-{os.getpid()}",
        "--log-verbose=0",
    ]
    if explicit:
        # strict readiness (the default) as SageMaker's serve runs it: /v2/health/ready is what /ping answers there
        command += ["--model-control-mode=explicit"]
    return command


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="HTTP port")
    parser.add_argument("--repository", type=Path, default=None, help="default: a new one holding --model-dir")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="a MONAI bundle: directory, .zip or model.tar.gz (default: see doc)",
    )
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--load-all", action="store_true", help="load every model at start (no explicit control)")
    parser.add_argument(
        "--as-image",
        action="store_true",
        help="run the server the image's way: its watchdog-bin/tritonserver shim (the watchdog stops the server "
        "when a stub dies) with SageMaker serve's HTTP-off options first (pytriton's server has no SageMaker "
        "frontend, so --allow-sagemaker is left out)",
    )
    args = parser.parse_args(argv)
    run_dir = (args.run_dir or Path(tempfile.mkdtemp(prefix="tritonserver-"))).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    backends = prepare_backends(run_dir)
    sys.path.insert(0, str(REPO_ROOT))  # the launcher's own imports (testkit); the server gets the image's tree
    repository = args.repository
    if repository is None:
        from model_code.triton_model.package import DEFAULT_MODEL_NAME, write_model_entry
        from testkit.local_model import resolve_model_dir

        repository = run_dir / "model_repository"
        write_model_entry(repository, name=DEFAULT_MODEL_NAME, model_dir=resolve_model_dir(args.model_dir))
    command = server_command(
        repository=repository.resolve(),
        backends=backends,
        http_port=args.port,
        grpc_port=args.port + 1,
        metrics_port=args.port + 2,
        explicit=not args.load_all,
    )
    print(f"tritonserver on http://127.0.0.1:{args.port} (repository {repository})", flush=True)
    environment = server_environment(run_dir)
    if args.as_image:
        # The shim appends --allow-http=true --http-address=127.0.0.1 --http-port=$TRITON_WATCHDOG_HTTP_PORT.
        environment.update(
            TRITON_WATCHDOG_DIR=str(HERE), TRITON_WATCHDOG_SERVER=command[0], TRITON_WATCHDOG_HTTP_PORT=str(args.port)
        )
        watchdog = ["/bin/sh", str(SHIM), *SERVE_OPTIONS[1:], *command[1:]]
    else:
        watchdog = [sys.executable, str(WATCHDOG), "--on-stub-death=reload", "--", *command]
    # exec: stopping the process group stops the watchdog, tritonserver and its python backend stubs together.
    os.execve(watchdog[0], watchdog, environment)  # noqa: S606 - argument list built above


if __name__ == "__main__":
    main()
