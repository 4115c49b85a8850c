"""The code asset of a platform Lambda function: its runtime folder plus the shared modules, staged at synth.

A plain copy, never Docker (DESIGN.md): the handlers' folder (``stacks/<stack>/runtime/``) and each module of
``function_shared.SHARED_MODULES`` under its top-level name go into one staging folder per runtime folder, which
CDK hashes and copies into the cloud assembly like any asset folder. So the asset hash, and a redeploy, follow a
change to a shared module as well as to a handler.
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import tempfile
from functools import cache
from pathlib import Path

from aws_cdk import aws_lambda as lambda_

from stacks.components.function_shared import SHARED_MODULES

# Never part of an asset: bytecode differs by interpreter and would change the hash from machine to machine.
_NOT_CODE = shutil.ignore_patterns("__pycache__", "*.pyc")


def shared_module_files() -> dict[str, Path]:
    """The file of each shared module, by the top-level name it has in an asset."""
    files = {}
    for name, dotted in SHARED_MODULES.items():
        spec = importlib.util.find_spec(dotted)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"shared function module {dotted} is not in the repository: restore it")
        files[name] = Path(spec.origin)
    return files


@cache
def _staging_root() -> Path:
    # Lives until the process ends: CDK copies the folders into the assembly when a function binds its code.
    root = Path(tempfile.mkdtemp(prefix="platform-function-code-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@cache
def stage_function_code(runtime_dir: Path) -> Path:
    """A folder with ``runtime_dir``'s files and the shared modules beside them: what the function deploys."""
    staged = Path(tempfile.mkdtemp(prefix=f"{runtime_dir.parent.name}-", dir=_staging_root())) / "code"
    shutil.copytree(runtime_dir, staged, ignore=_NOT_CODE)
    for name, source in shared_module_files().items():
        target = staged / f"{name}.py"
        if target.exists():
            raise ValueError(
                f"{runtime_dir} has its own {target.name}, which the shared module {SHARED_MODULES[name]} would "
                "replace in the asset: rename the handler's module"
            )
        shutil.copyfile(source, target)
    return staged


def function_code(runtime_dir: str | Path) -> lambda_.Code:
    """The Lambda code of the handlers in ``runtime_dir``, with the shared modules at the asset's top level."""
    return lambda_.Code.from_asset(str(stage_function_code(Path(runtime_dir).resolve())))
