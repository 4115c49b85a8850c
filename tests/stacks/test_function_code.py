"""The Lambda functions' code assets: each runtime folder plus the shared modules, and the handlers run from it alone.

What Lambda does with an asset is import the handler module from the asset's top level with nothing else of the
repository around; the subprocess below does the same with the synthesized asset folders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from stacks.approval.runtime import deploy_approved
from stacks.backfill.runtime import backfill_list, backfill_submit
from stacks.components.function_code import shared_module_files, stage_function_code
from stacks.components.function_shared import SHARED_MODULES, expose_shared_modules
from stacks.healthimaging.runtime import import_completed, start_import
from stacks.inference.runtime import import_seg, index_result, request_inference
from stacks.viewer.runtime import dicomweb_proxy
from tests.stacks.assembly import PROJECT_ROOT, Assembly

HANDLER_MODULES = [
    start_import, import_completed, request_inference, import_seg, index_result, deploy_approved, dicomweb_proxy,
    backfill_list, backfill_submit,
]

RUNTIMES = {
    "healthimaging": ["import_completed.py", "start_import.py"],
    "inference": ["import_seg.py", "index_result.py", "request_inference.py", "result_notice.py", "seg_reader.py",
                  "store_seg.py"],
    "approval": ["deploy_approved.py"],
    "backfill": ["backfill_items.py", "backfill_list.py", "backfill_metrics.py", "backfill_submit.py"],
    "viewer": ["dicomweb_proxy.py"],
}
# Imports the handler module with only the asset folder (argv[1]) added to the path, as Lambda does, and fails when
# any of the repository's packages came along.
IMPORT_ALONE = """
import sys
sys.path.insert(0, sys.argv[1])
module = __import__(sys.argv[2])
assert callable(module.handler)
leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("stacks", "model_code", "tests"))
assert not leaked, leaked
"""


def import_alone(asset: Path, module: str) -> subprocess.CompletedProcess[str]:
    # -I: no PYTHONPATH, no user site, no script or working directory on the path; the venv's boto3 stays.
    return subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_ALONE, str(asset), module],
        capture_output=True, text=True, check=False, cwd=asset,
    )


@pytest.mark.parametrize("stack", sorted(RUNTIMES))
def test_an_asset_is_the_runtime_folder_and_the_shared_modules(stack: str) -> None:
    staged = stage_function_code((PROJECT_ROOT / "stacks" / stack / "runtime").resolve())
    assert sorted(p.name for p in staged.iterdir()) == sorted(
        [*RUNTIMES[stack], "__init__.py", *(f"{name}.py" for name in SHARED_MODULES)]
    )
    # The very files of the repository: one parser and one settings helper, copied, never rewritten.
    for name, source in shared_module_files().items():
        assert (staged / f"{name}.py").read_bytes() == source.read_bytes()
    assert (staged / "s3_uri.py").read_bytes() == (PROJECT_ROOT / "model_code" / "core" / "s3_uri.py").read_bytes()


def test_every_handler_imports_from_its_synthesized_asset_alone(assembly: Assembly) -> None:
    handlers = []
    for stack, logical_id, resource in assembly.all_resources():
        if resource["Type"] != "AWS::Lambda::Function" or "S3Key" not in resource["Properties"].get("Code", {}):
            continue
        if not resource["Properties"].get("Runtime", "").startswith("python"):
            continue  # CDK's own providers (Node.js)
        # The staged asset folder is named after the hash its zip is uploaded under.
        asset = assembly.outdir / f"asset.{resource['Properties']['Code']['S3Key'].removesuffix('.zip')}"
        module = resource["Properties"]["Handler"].rsplit(".", 1)[0]
        result = import_alone(asset, module)
        assert result.returncode == 0, f"{stack}/{logical_id}: {result.stderr}"
        handlers.append(module)
    assert sorted(handlers) == ["backfill_list", "backfill_submit", "deploy_approved", "import_completed",
                                "index_result", "request_inference", "start_import"]


def test_the_viewer_proxy_imports_from_its_synthesized_asset_alone(variant_assembly: Assembly) -> None:
    # The viewer stack exists only when enabled (the variant): its proxy's asset, like every handler's.
    (function,) = [r for _, _, r in variant_assembly.all_resources() if r["Type"] == "AWS::Lambda::Function"
                   and r["Properties"].get("Handler") == "dicomweb_proxy.handler"]
    key = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    result = import_alone(variant_assembly.outdir / f"asset.{key}", "dicomweb_proxy")
    assert result.returncode == 0, result.stderr


def test_a_handler_without_the_shared_modules_does_not_import(tmp_path: Path) -> None:
    # Must-not twin of the above: the runtime folder alone (the asset before the shared modules) cannot run.
    shutil.copytree(PROJECT_ROOT / "stacks" / "inference" / "runtime", tmp_path / "asset")
    result = import_alone(tmp_path / "asset", "request_inference")
    assert result.returncode != 0
    assert "No module named 'function_settings'" in result.stderr


def test_a_foreign_module_under_a_shared_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3_uri", type(sys)("s3_uri"))
    with pytest.raises(ImportError, match="a module named 's3_uri' is already imported"):
        expose_shared_modules()


@pytest.mark.parametrize("module", HANDLER_MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_the_variables_a_stack_sets_are_the_ones_the_settings_read(module: ModuleType) -> None:
    # The stack writes the ENV_* names; the settings read each field from its name in upper case, and the optional
    # ones (OPTIONAL_VARIABLES, e.g. import_seg's VIEWER_URL) when they are set.
    written = {value for name, value in vars(module).items() if name.startswith("ENV_")}
    assert written == set(module.Settings.variables().values()) | set(getattr(module, "OPTIONAL_VARIABLES", ()))
    with pytest.raises(RuntimeError, match=r"are not set: deploy this function with the \w+ stack"):
        module.Settings.from_environment({})
