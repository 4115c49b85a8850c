"""Each runtime imports only the core and what model_code/runtimes.py allows, and each deliverable carries exactly
that: checked in a fresh interpreter (sys.modules), in the source (every import, function-level ones included),
in each image's copied tree (the Dockerfile's COPY lines, the edge bundle, the MAP) and in the requirements files.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from model_code.runtimes import IMAGES, MODEL_CODE, PACKAGES, TEST_SUPPORT, closure, package_files
from testkit.images import image_tree

ROOT = MODEL_CODE.parent
MAIN_PYTHON = Path(sys.executable)
MAP_PYTHON = ROOT / ".venv-map" / "bin" / "python"
# map_app needs the MONAI Deploy SDK (holoscan), which only the MAP venv carries.
INTERPRETERS = {"map_app": MAP_PYTHON}

# Imports every module of one package in this interpreter, then prints what got loaded.
PROBE = """
import importlib, json, pkgutil, sys
name = sys.argv[1]
root = importlib.import_module(f"model_code.{name}")
for info in pkgutil.walk_packages(getattr(root, "__path__", []), f"model_code.{name}."):
    importlib.import_module(info.name)
print(json.dumps({
    "model_code": sorted({m.split(".")[1] for m in sys.modules if m.startswith("model_code.")}),
    "top_level": sorted({m.split(".")[0] for m in sys.modules}),
}))
"""


def probe(name: str) -> dict[str, list[str]]:
    python = INTERPRETERS.get(name, MAIN_PYTHON)
    assert python.exists(), f"{python} is missing: run `make map-venv` (the suite needs it; it is never skipped)"
    completed = subprocess.run(
        [str(python), "-c", PROBE, name], cwd=ROOT, capture_output=True, text=True, check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.splitlines()[-1])


def test_the_table_names_every_package() -> None:
    found = {p.name for p in MODEL_CODE.iterdir() if (p / "__init__.py").is_file()}
    found |= {p.stem for p in MODEL_CODE.glob("*.py") if p.name != "__init__.py"}
    assert found == set(PACKAGES)
    for package in PACKAGES.values():
        assert set(package.imports) <= set(PACKAGES), package.name
    assert TEST_SUPPORT not in PACKAGES
    assert (ROOT / TEST_SUPPORT / "__init__.py").is_file()


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_a_fresh_interpreter_loads_only_what_the_table_allows(name: str) -> None:
    loaded = probe(name)
    outside = set(loaded["model_code"]) - set(closure(name))
    assert not outside, f"{name} loaded model_code.{sorted(outside)}; it may import {closure(name)} only"
    forbidden = (set(PACKAGES[name].forbidden) - set(PACKAGES[name].pulled_in)) & set(loaded["top_level"])
    assert not forbidden, f"{name} loaded {sorted(forbidden)}, which it must never import"
    assert TEST_SUPPORT not in loaded["top_level"]


def test_the_probe_sees_what_a_package_loads() -> None:
    # The must case beside the must-nots: a package that imports torch and another runtime's modules shows them.
    serving = probe("serving")
    assert {"core", "healthimaging", "segmentation", "serving"} <= set(serving["model_code"])
    assert {"torch", "boto3"} <= set(serving["top_level"])
    assert "torch" not in probe("edge")["top_level"]


def _imports(path: Path) -> set[str]:
    """Every module a source file imports anywhere, function-level imports included (``from a import b``: a, a.b)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def _model_code_imports(path: Path) -> set[str]:
    """The model_code packages (and testkit) a source file imports."""
    names: set[str] = set()
    for parts in (module.split(".") for module in _imports(path)):
        if parts[0] == "model_code" and len(parts) > 1 and parts[1] in PACKAGES:
            names.add(parts[1])
        elif parts[0] == TEST_SUPPORT:
            names.add(TEST_SUPPORT)
    return names


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_no_source_imports_outside_the_table(name: str) -> None:
    folder = MODEL_CODE / name
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else [MODEL_CODE / f"{name}.py"]
    for path in files:
        outside = _model_code_imports(path) - set(closure(name))
        assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}: {name} may import {closure(name)}"
        never = set(PACKAGES[name].forbidden) - set(PACKAGES[name].optional)
        libraries = {module.split(".")[0] for module in _imports(path)} & never
        assert not libraries, f"{path.relative_to(ROOT)} imports {sorted(libraries)}, which {name} must never import"


def test_the_source_scan_sees_imports() -> None:
    serving = set().union(*(_model_code_imports(p) for p in (MODEL_CODE / "serving").rglob("*.py")))
    assert serving == {"core", "healthimaging", "segmentation", "serving", "synthetic"}
    assert _model_code_imports(ROOT / "testkit" / "edge.py") >= {"core", "edge"}
    # function-level imports count: the edge engine imports torch inside torchscript_network only
    assert "torch" in _imports(MODEL_CODE / "edge" / "engine.py")


def _dockerfile(image: str) -> Path:
    return ROOT / image / "Dockerfile"


def _pythonpath(dockerfile: Path) -> str:
    match = re.search(r"PYTHONPATH=(\S+)", dockerfile.read_text())
    assert match, f"{dockerfile} sets no PYTHONPATH"
    return match[1]


DOCKER_IMAGES = sorted(image for image in IMAGES if image.startswith("containers/"))


def test_every_dockerfile_has_a_runtime() -> None:
    found = sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "containers").glob("*/Dockerfile"))
    assert found == DOCKER_IMAGES


def _carried(files: list[str]) -> set[str]:
    """The model_code packages a list of paths below model_code/ holds."""
    return {Path(f).parts[0].removesuffix(".py") for f in files if f != "__init__.py"}


@pytest.mark.parametrize("image", DOCKER_IMAGES)
def test_an_image_copies_its_runtime_and_nothing_else(image: str) -> None:
    dockerfile = _dockerfile(image)
    program = _pythonpath(dockerfile).rstrip("/") + "/model_code/"
    tree = image_tree(dockerfile)
    assert not [path for path in tree if TEST_SUPPORT in Path(path).parts], "an image must never carry testkit"
    code = [path[len(program) :] for path in tree if path.startswith(program)]
    assert _carried(code) == set(closure(IMAGES[image])), f"{image} must copy {closure(IMAGES[image])}"
    assert "__init__.py" in code
    # Every model_code import in the copied sources resolves inside the copy: the image lacks nothing it runs.
    for path, source in tree.items():
        if path.endswith(".py"):
            missing = _model_code_imports(source) - _carried(code)
            assert not missing, f"{path} in {image} imports {sorted(missing)}, which the image does not copy"


@pytest.mark.parametrize("runtime", ["edge", "map_app"])
def test_the_edge_bundle_and_the_map_carry_their_runtime_only(runtime: str) -> None:
    files = package_files(runtime)
    assert _carried(files) == set(closure(runtime))
    assert not [f for f in files if TEST_SUPPORT in f]
    for relative in files:
        assert not _model_code_imports(MODEL_CODE / relative) - set(closure(runtime)), relative


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            assert version, f"{path}: {line!r} is not pinned exactly (name==version)"
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


ROOT_PINS = {**_pins(ROOT / "requirements.txt"), **_pins(ROOT / "requirements-dev.txt")}
# Pins that differ from the root files, each for a reason the requirements file states.
PIN_EXCEPTIONS = {
    ("triton_model", "numpy"): "1.26.4",  # the Triton python backend stub is built against numpy 1.x
    ("map_app", "typeguard"): "4.6.0",  # the MONAI Deploy SDK's, pinned with it in mk/map.mk
}
# What each image's base (a SageMaker DLC) already ships, so its requirements file leaves it out.
DLC_PROVIDES = {"containers/pytorch-inference": {"torch"}, "containers/training": {"torch"}}
REQUIREMENT_PACKAGES = sorted(name for name in PACKAGES if (MODEL_CODE / name).is_dir())


@pytest.mark.parametrize("name", REQUIREMENT_PACKAGES)
def test_a_package_pins_what_it_and_its_imports_need(name: str) -> None:
    pins = _pins(MODEL_CODE / name / "requirements.txt")
    for library, version in pins.items():
        assert version == PIN_EXCEPTIONS.get((name, library), ROOT_PINS.get(library)), f"{name}: {library}=={version}"
    for other in closure(name):
        if not (MODEL_CODE / other).is_dir():
            continue  # a module (runtimes.py): standard library only
        needed = set(_pins(MODEL_CODE / other / "requirements.txt"))
        assert needed <= set(pins), f"{name} imports {other}, so it needs {sorted(needed - set(pins))}"


@pytest.mark.parametrize("image", DOCKER_IMAGES)
def test_an_image_installs_its_runtime_requirements(image: str) -> None:
    runtime = _pins(MODEL_CODE / IMAGES[image] / "requirements.txt")
    installed = _pins(ROOT / image / "requirements.txt")
    assert installed.items() <= runtime.items(), f"{image} installs pins its runtime does not name"
    assert set(runtime) - set(installed) == DLC_PROVIDES.get(image, set())
