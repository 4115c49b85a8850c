"""What a container image carries, computed from its Dockerfile's COPY lines (and its .dockerignore's
``**/`` patterns), and that tree staged into a folder so the local stacks run exactly the image's code.

``make serve`` / ``make serve-triton`` (containers/*/local_*.py) put the staged ``/opt/program`` on the
servers' PYTHONPATH instead of the work tree: a module the image does not copy fails there as it would in the
image. tests/model_code/test_runtime_isolation.py checks each tree against model_code/runtimes.py.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Copy:
    """One ``COPY sources... destination`` line; sources are relative to the build context (the repository)."""

    sources: tuple[str, ...]
    destination: str


def dockerfile_copies(dockerfile: Path) -> list[Copy]:
    """The COPY lines of ``dockerfile`` (continuations joined); flags such as ``--chown`` are refused."""
    text = Path(dockerfile).read_text().replace("\\\n", " ")
    copies = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] != "COPY":
            continue
        if any(word.startswith("--") for word in words):
            raise ValueError(f"{dockerfile}: COPY flags are not modelled here: {line.strip()}")
        if len(words) < 3:
            raise ValueError(f"{dockerfile}: a COPY needs a source and a destination: {line.strip()}")
        copies.append(Copy(tuple(words[1:-1]), words[-1]))
    return copies


def _ignored_names(dockerfile: Path) -> list[str]:
    ignore = Path(dockerfile).with_name("Dockerfile.dockerignore")
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    return [line[3:] for line in lines if line.startswith("**/")]


def image_tree(dockerfile: Path, *, root: Path = REPO_ROOT) -> dict[str, Path]:
    """Every file the image gets from the build context: its path in the image -> the file in ``root``.

    Docker's rules: a directory source copies its contents into the destination; a file source goes into a
    destination ending in ``/`` (or into the destination folder when there are several sources), otherwise to
    the destination path itself.
    """
    ignored = _ignored_names(dockerfile)
    tree: dict[str, Path] = {}
    for copy in dockerfile_copies(dockerfile):
        into_folder = copy.destination.endswith("/") or len(copy.sources) > 1
        for source in copy.sources:
            path = root / source
            if path.is_dir():
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    relative = file.relative_to(path)
                    if not any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in ignored):
                        tree[str(PurePosixPath(copy.destination) / relative.as_posix())] = file
            elif path.is_file():
                target = PurePosixPath(copy.destination) / path.name if into_folder else PurePosixPath(copy.destination)
                tree[str(target)] = path
            else:
                raise FileNotFoundError(f"{dockerfile}: COPY source {source} does not exist under {root}")
    return tree


def python_packages(tree: dict[str, Path], under: str) -> set[str]:
    """The ``model_code`` subpackages (and top-level names) the image holds below ``under``."""
    names = set()
    prefix = re.escape(under.rstrip("/")) + "/"
    for image_path in tree:
        match = re.match(prefix + r"([^/]+)(?:/([^/]+)/)?", image_path)
        if match:
            names.add(match[1] if match[2] is None or match[1] != "model_code" else f"model_code.{match[2]}")
    return names


def stage_image(dockerfile: Path, under: str, target: Path) -> Path:
    """Copy the image's files below ``under`` (e.g. ``/opt/program``) into ``target``; returns ``target``."""
    prefix = under.rstrip("/") + "/"
    if target.exists():
        shutil.rmtree(target)
    for image_path, source in image_tree(dockerfile).items():
        if image_path.startswith(prefix):
            destination = target / image_path[len(prefix) :]
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target
