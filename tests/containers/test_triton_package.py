"""The Triton model config and the per-model archives a multi-model endpoint loads.

Every config.pbtxt is parsed with tritonclient's ModelConfig protobuf (what tritonserver itself reads).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from model_code.triton_model.package import MAX_BATCH_SIZE, MODEL_PY, package_triton_model, render_config


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_config_declares_io_and_dynamic_batching() -> None:
    config = parse(render_config("spleen_v2"))
    assert (config.name, config.backend, config.max_batch_size) == ("spleen_v2", "python", MAX_BATCH_SIZE)
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("DICOM_ZIP", model_config_pb2.TYPE_STRING, [1])
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
        ("SEG", model_config_pb2.TYPE_STRING, [1]),
        ("SUMMARY", model_config_pb2.TYPE_STRING, [1]),
    ]
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds > 0


def test_archive_holds_one_model_folder_named_like_the_archive(threshold_model_dir: Path, tmp_path: Path) -> None:
    archive = package_triton_model(threshold_model_dir, tmp_path / "spleen-v2.tar.gz")
    with tarfile.open(archive) as opened:
        names = sorted(opened.getnames())
        config_text = opened.extractfile("spleen-v2/config.pbtxt").read().decode()  # type: ignore[union-attr]
        model_py = opened.extractfile("spleen-v2/1/model.py").read().decode()  # type: ignore[union-attr]
    bundle_files = sorted(p.relative_to(threshold_model_dir).as_posix() for p in threshold_model_dir.rglob("*"))
    assert {"configs/metadata.json", "configs/inference.json", "models/model.ts", "models/model.pt"} <= set(bundle_files)
    # The version folder is the bundle's root, every file of it, beside the rendered model.py.
    assert names == sorted(["spleen-v2", "spleen-v2/1", "spleen-v2/1/model.py", "spleen-v2/config.pbtxt",
                            *(f"spleen-v2/1/{name}" for name in bundle_files)])
    assert parse(config_text).name == "spleen-v2"
    assert model_py == MODEL_PY


@pytest.mark.parametrize(
    ("out_name", "message"),
    [
        ("spleen.zip", "must end with .tar.gz"),  # SageMaker's TargetModel is a .tar.gz
        ("bad name.tar.gz", "model name 'bad name'"),  # a URL path segment
        ("-spleen.tar.gz", "model name '-spleen'"),
    ],
)
def test_bad_archive_names_are_refused(threshold_model_dir: Path, tmp_path: Path, out_name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        package_triton_model(threshold_model_dir, tmp_path / out_name)


def test_a_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    from model_code.core.errors import ModelDirectoryError

    with pytest.raises(ModelDirectoryError, match=r"is not a MONAI bundle: configs/metadata\.json is missing"):
        package_triton_model(tmp_path, tmp_path / "spleen.tar.gz")


def test_a_zoo_bundle_zip_is_packaged_with_its_own_files(tmp_path: Path) -> None:
    import zipfile

    from testkit.models import save_zoo_spleen_bundle

    bundle = save_zoo_spleen_bundle(tmp_path / "spleen_ct_segmentation")
    with zipfile.ZipFile(tmp_path / "spleen.zip", "w") as zipped:
        for path in sorted(bundle.rglob("*")):
            zipped.write(path, f"spleen_ct_segmentation/{path.relative_to(bundle).as_posix()}")
    archive = package_triton_model(tmp_path / "spleen.zip", tmp_path / "zoo.tar.gz")
    with tarfile.open(archive) as opened:
        names = set(opened.getnames())
    assert {"zoo/1/configs/metadata.json", "zoo/1/configs/inference.json", "zoo/1/models/model.ts"} <= names


def test_a_bundle_with_a_broken_config_is_refused_when_packaged(threshold_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from model_code.core.errors import ModelDirectoryError

    bundle = Path(shutil.copytree(threshold_model_dir, tmp_path / "b"))
    (bundle / "configs" / "inference.json").write_text("{")
    with pytest.raises(ModelDirectoryError, match=r"configs/inference\.json is not valid JSON"):
        package_triton_model(bundle, tmp_path / "spleen.tar.gz")
