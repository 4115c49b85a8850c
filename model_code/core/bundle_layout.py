"""The MONAI bundle layout (the Model Zoo's format) and how a bundle arrives: a directory, a ``.zip`` or a
SageMaker ``model.tar.gz``, unpacked safely.

Standard library only, so every runtime (the edge runner included) finds the same files; reading the configs
with MONAI's ``ConfigParser`` is ``model_code.segmentation.bundle``'s job.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from model_code.core.errors import ModelDirectoryError

METADATA_JSON = PurePosixPath("configs/metadata.json")
INFERENCE_JSON = PurePosixPath("configs/inference.json")
MODEL_TS = PurePosixPath("models/model.ts")
MODEL_PT = PurePosixPath("models/model.pt")
LAYOUT = f"{METADATA_JSON}, {INFERENCE_JSON} and {MODEL_TS} and/or {MODEL_PT}"

# A zoo bundle is tens of megabytes; the largest (whole-body models) stay well under 2 GiB unpacked.
MAX_BUNDLE_BYTES = 4 * 1024**3
MAX_BUNDLE_MEMBERS = 10_000


def is_bundle(directory: Path) -> bool:
    return (Path(directory) / METADATA_JSON).is_file()


def find_root(directory: Path) -> Path:
    """``directory`` itself, or its one sub-directory, holding ``configs/metadata.json`` (the zoo zips wrap a
    bundle in a folder named after it; SageMaker's ``model.tar.gz`` usually holds it at the top)."""
    directory = Path(directory)
    if is_bundle(directory):
        return directory
    children = [child for child in directory.iterdir() if child.is_dir() and not child.name.startswith(".")]
    if len(children) == 1 and is_bundle(children[0]):
        return children[0]
    raise ModelDirectoryError(
        f"{directory} is not a MONAI bundle: {METADATA_JSON} is missing (a bundle holds {LAYOUT}, at its top "
        "or in one folder); lay the model out as the MONAI Model Zoo does"
    )


def check_bundle_files(root: Path) -> Path:
    """The checks a packager can make without MONAI: the layout's files exist and its configs are JSON objects.
    (Parsing them with ``ConfigParser`` is the serving runtime's job, on load.)"""
    root = find_root(Path(root))
    for config in (METADATA_JSON, INFERENCE_JSON):
        path = root / config
        if not path.is_file():
            raise ModelDirectoryError(f"{path} is missing: a MONAI bundle holds {LAYOUT}")
        try:
            document = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelDirectoryError(f"{path} is not valid JSON ({error}): fix it or re-export the bundle") from error
        if not isinstance(document, dict):
            raise ModelDirectoryError(f"{path} holds a JSON {type(document).__name__}, not an object")
    if not (root / MODEL_TS).is_file() and not (root / MODEL_PT).is_file():
        raise ModelDirectoryError(f"{root} has no network: a bundle needs {MODEL_TS} or {MODEL_PT}")
    return root


def _member_path(target: Path, name: str, archive: Path) -> Path:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise ModelDirectoryError(f"{archive} has a member outside the bundle ({name!r}): refusing to unpack it")
    return target.joinpath(*pure.parts)


def _check_budget(archive: Path, members: int, total: int, max_bytes: int) -> None:
    if members > MAX_BUNDLE_MEMBERS:
        raise ModelDirectoryError(f"{archive} has {members} members, over {MAX_BUNDLE_MEMBERS}: not a model bundle")
    if total > max_bytes:
        raise ModelDirectoryError(
            f"{archive} unpacks to {total} bytes, over the {max_bytes}-byte limit for a model bundle"
        )


def _unzip(archive: Path, target: Path, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(archive) as zipped:
            infos = zipped.infolist()
            # Declared sizes first (nothing decompressed yet); zipfile never yields more than a member declares.
            _check_budget(archive, len(infos), sum(info.file_size for info in infos), max_bytes)
            for info in infos:
                path = _member_path(target, info.filename, archive)
                if info.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, path.open("wb") as sink:
                    while chunk := source.read(1 << 20):
                        sink.write(chunk)
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as error:
        raise ModelDirectoryError(f"{archive} is not a readable zip ({error})") from error


def _untar(archive: Path, target: Path, max_bytes: int) -> None:
    try:
        with tarfile.open(archive, "r:*") as tarred:
            members = tarred.getmembers()
            _check_budget(archive, len(members), sum(member.size for member in members if member.isfile()), max_bytes)
            for member in members:
                _member_path(target, member.name, archive)
                if not (member.isfile() or member.isdir()):
                    raise ModelDirectoryError(
                        f"{archive} has a member that is not a file or folder ({member.name!r}): a bundle holds "
                        "plain files only"
                    )
            # The "data" filter refuses what the checks above missed (odd modes, device files) all the same.
            tarred.extractall(target, members=members, filter="data")
    except (tarfile.TarError, EOFError) as error:
        raise ModelDirectoryError(f"{archive} is not a readable tar archive ({error})") from error


def open_bundle(source: Path, workdir: Path, *, max_bytes: int = MAX_BUNDLE_BYTES) -> Path:
    """The bundle's root directory: ``source`` itself (or its one sub-folder) when a directory, else the
    ``.zip`` / ``.tar.gz`` unpacked under ``workdir``, which the caller owns and removes."""
    source = Path(source)
    if source.is_dir():
        return find_root(source)
    if not source.is_file():
        raise ModelDirectoryError(f"{source} does not exist: give a bundle directory, a bundle .zip or a model.tar.gz")
    target = Path(workdir) / "bundle"
    target.mkdir(parents=True, exist_ok=False)
    if zipfile.is_zipfile(source):
        _unzip(source, target, max_bytes)
    elif tarfile.is_tarfile(source):
        _untar(source, target, max_bytes)
    else:
        raise ModelDirectoryError(f"{source} is neither a directory, a zip nor a tar archive: give a MONAI bundle")
    return find_root(target)
