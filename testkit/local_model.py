"""Which model the local serving harnesses (make serve, make serve-triton) serve when none is named."""

from __future__ import annotations

from pathlib import Path

from model_code.core.model_dir import METADATA_FILE, MODEL_FILE

REPO_ROOT = Path(__file__).resolve().parents[1]
# What `make demo` leaves (override with MODEL_DIR=...).
DEMO_MODEL_DIR = REPO_ROOT / "demo-output" / "model"
FRESH_MODEL_DIR = REPO_ROOT / "build" / "serve-model"


def has_model(model_dir: Path) -> bool:
    return (model_dir / MODEL_FILE).is_file() and (model_dir / METADATA_FILE).is_file()


def resolve_model_dir(requested: Path | None) -> Path:
    """The model asked for, else what `make demo` left, else an untrained contract UNet (made once)."""
    if requested is not None:
        if not has_model(requested):
            raise SystemExit(f"{requested} is not a model directory: it needs {MODEL_FILE} and {METADATA_FILE}")
        return requested.resolve()
    if has_model(DEMO_MODEL_DIR):
        return DEMO_MODEL_DIR
    if not has_model(FRESH_MODEL_DIR):
        from testkit.models import save_untrained_unet

        FRESH_MODEL_DIR.mkdir(parents=True, exist_ok=True)
        save_untrained_unet(FRESH_MODEL_DIR, seed=0)
        print(f"no model given and none from `make demo`: initialised an untrained UNet in {FRESH_MODEL_DIR}")
    return FRESH_MODEL_DIR
