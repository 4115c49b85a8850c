"""The demo model as the archive the async endpoint serves, labelled not for clinical use.

`make deploy` seeds it when no model has been approved yet, so the endpoint has something to load on its first
start. It is the MONAI bundle `make demo` trains on synthetic phantoms: good for a smoke test, never for patients.
The label travels in three places: ``intended_use`` in the bundle's configs/metadata.json (the MONAI bundle
metadata key), the S3 object's tag (``intended-use=not-for-clinical-use``, which `monai-platform doctor` reports)
and its object metadata.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

from model_code.core.bundle_layout import METADATA_JSON, open_bundle

INTENDED_USE = "Demonstration only: trained on synthetic phantoms by `make demo`. Not for clinical use."
TAG_KEY, TAG_VALUE = "intended-use", "not-for-clinical-use"


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def package_demo_bundle(model_dir: Path, out: Path) -> Path:
    """The bundle at ``model_dir`` (directory, .zip or model.tar.gz) as the tar.gz ``out``, its configs/ and
    models/ at the top (the layout a training job's model.tar.gz has, which the endpoint's model_fn reads) and
    its configs/metadata.json labelled. The bundle is loaded first, as the endpoint will load it: a broken one
    fails here, naming the file, not on the endpoint's first start."""
    from model_code.segmentation.bundle import ModelBundle

    with tempfile.TemporaryDirectory(prefix="demo-bundle-") as work:
        root = open_bundle(Path(model_dir), Path(work))
        ModelBundle.load(root).network("cpu")  # configs parse, the network loads
        metadata = json.loads((root / METADATA_JSON).read_text())
        labelled = (json.dumps({**metadata, "intended_use": INTENDED_USE}, indent=4) + "\n").encode()
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w:gz") as archive:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                name = path.relative_to(root).as_posix()
                if name == str(METADATA_JSON):
                    _add_bytes(archive, name, labelled)
                elif name.split("/")[0] in ("configs", "models"):
                    archive.add(path, arcname=name)
    return out

