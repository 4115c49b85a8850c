"""The demo model as the archive the async endpoint serves, labelled not for clinical use.

`make deploy` seeds it when no model has been approved yet, so the endpoint has something to load on its first
start. It is the model `make demo` trains on synthetic phantoms: good for a smoke test, never for patients. The
label travels in three places: ``intended_use`` in metadata.json (the MONAI bundle metadata key), the S3 object's
tag (``intended-use=not-for-clinical-use``, which `monai-platform doctor` reports) and its object metadata.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from model_code.core.model_dir import METADATA_FILE, MODEL_FILE, ModelMetadata, model_file

INTENDED_USE = "Demonstration only: trained on synthetic phantoms by `make demo`. Not for clinical use."
TAG_KEY, TAG_VALUE = "intended-use", "not-for-clinical-use"


def package_demo_bundle(model_dir: Path, out: Path) -> Path:
    """``model.ts`` and a labelled ``metadata.json`` of ``model_dir`` at the top of the tar.gz ``out`` (the
    layout a training job's model.tar.gz has, which the endpoint's model_fn reads)."""
    metadata = ModelMetadata.load(model_dir)
    labelled = {**metadata.to_json(), "intended_use": INTENDED_USE}
    document = (json.dumps(labelled, indent=2, sort_keys=True) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as archive:
        archive.add(model_file(model_dir), arcname=MODEL_FILE)
        info = tarfile.TarInfo(METADATA_FILE)
        info.size = len(document)
        archive.addfile(info, io.BytesIO(document))
    return out
