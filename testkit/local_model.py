"""Which model the local serving harnesses (make serve, make serve-triton) serve when none is named."""

from __future__ import annotations

import shutil
from pathlib import Path

from model_code.core.bundle_layout import LAYOUT, METADATA_JSON, find_root, open_bundle
from model_code.core.errors import ModelDirectoryError

REPO_ROOT = Path(__file__).resolve().parents[1]
# What `make demo` leaves (override with MODEL_DIR=...).
DEMO_MODEL_DIR = REPO_ROOT / "demo-output" / "model"
FRESH_MODEL_DIR = REPO_ROOT / "build" / "serve-model"
# Where a bundle given as .zip or model.tar.gz is unpacked for the local servers (TorchServe loads a directory).
UNPACKED_DIR = REPO_ROOT / "build" / "serve-bundle"


def has_model(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a MONAI bundle directory (or holds one in its only folder)."""
    try:
        find_root(model_dir)
    except (ModelDirectoryError, OSError):
        return False
    return True


def resolve_model_dir(requested: Path | None) -> Path:
    """The bundle asked for (a directory, or a .zip / model.tar.gz unpacked under build/), else what `make demo`
    left, else an untrained UNet bundle (made once)."""
    if requested is not None:
        if requested.is_file():
            shutil.rmtree(UNPACKED_DIR, ignore_errors=True)
            UNPACKED_DIR.mkdir(parents=True)
            try:
                return open_bundle(requested, UNPACKED_DIR).resolve()
            except ModelDirectoryError as error:
                raise SystemExit(str(error)) from error
        if not has_model(requested):
            raise SystemExit(f"{requested} is not a MONAI bundle: {METADATA_JSON} is missing (a bundle holds {LAYOUT})")
        return find_root(requested).resolve()
    if has_model(DEMO_MODEL_DIR):
        return find_root(DEMO_MODEL_DIR)
    if not has_model(FRESH_MODEL_DIR):
        from testkit.models import save_untrained_unet

        FRESH_MODEL_DIR.mkdir(parents=True, exist_ok=True)
        save_untrained_unet(FRESH_MODEL_DIR, seed=0)
        print(f"no model given and none from `make demo`: initialised an untrained UNet bundle in {FRESH_MODEL_DIR}")
    return FRESH_MODEL_DIR
