"""MONAI bundles read with MONAI's ConfigParser: the zoo's spleen layout, weights only, archives, broken configs.

The zoo-layout bundle here is built as the Model Zoo's spleen_ct_segmentation ships it (its config keys,
datasets and evaluator included), with MONAI's own tools: ``ConfigParser.export_config_file`` for the configs,
``torch.save`` of the UNet's state_dict and ``torch.jit.script`` for the TorchScript. Nothing is downloaded.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import UNet

from model_code.core.bundle_layout import INFERENCE_JSON, METADATA_JSON, MODEL_PT, MODEL_TS, open_bundle
from model_code.core.errors import ModelDirectoryError
from model_code.core.model_dir import InferenceSpec, Preprocessing
from model_code.core.spleen import SPLEEN_UNET_ARGS
from model_code.segmentation.bundle import ModelBundle
from testkit.models import zoo_spleen_configs


@pytest.fixture(scope="module")
def spleen_unet() -> torch.nn.Module:
    torch.manual_seed(3)
    return UNet(**SPLEEN_UNET_ARGS).eval()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def zoo_bundle(tmp_path_factory: pytest.TempPathFactory, spleen_unet: torch.nn.Module) -> Path:
    root = tmp_path_factory.mktemp("zoo") / "spleen_ct_segmentation"
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    metadata, inference = zoo_spleen_configs()
    ConfigParser.export_config_file(metadata, str(root / METADATA_JSON), indent=4)
    ConfigParser.export_config_file(inference, str(root / INFERENCE_JSON), indent=4)
    torch.save(spleen_unet.state_dict(), str(root / MODEL_PT))
    torch.jit.script(spleen_unet).save(str(root / MODEL_TS))
    return root


def copy_bundle(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / bundle.name))


def probe() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(1, 1, 32, 32, 32)


def test_the_zoo_spleen_layout_loads_and_describes_the_model(zoo_bundle: Path, spleen_unet: torch.nn.Module):
    bundle = ModelBundle.load(zoo_bundle)
    description = bundle.description
    assert description.labels == {0: "background", 1: "spleen"}
    assert description.task == "segmentation"
    assert (description.name, description.version) == ("spleen_ct_segmentation", "0.2.0")
    assert description.network.name == "UNet"
    assert description.network.args == SPLEEN_UNET_ARGS
    # The zoo's spleen values are the platform's defaults: both read from the bundle, the same.
    assert description.preprocessing == Preprocessing()
    assert description.inference == InferenceSpec()
    assert description.metrics == {"mean_dice": 0.96}
    network = bundle.network("cpu")
    assert isinstance(network, torch.jit.ScriptModule)
    with torch.inference_mode():
        assert torch.equal(network(probe()), spleen_unet(probe()))


def test_a_bundle_without_model_ts_loads_network_def_with_model_pt(
    zoo_bundle: Path, spleen_unet: torch.nn.Module, tmp_path: Path
):
    root = copy_bundle(zoo_bundle, tmp_path)
    (root / MODEL_TS).unlink()
    network = ModelBundle.load(root).network("cpu")
    assert isinstance(network, UNet)
    assert not network.training
    with torch.inference_mode():
        assert torch.equal(network(probe()), spleen_unet(probe()))


def test_a_checkpoint_under_model_is_read_as_the_zoo_checkpoint_loader_reads_it(
    zoo_bundle: Path, spleen_unet: torch.nn.Module, tmp_path: Path
):
    root = copy_bundle(zoo_bundle, tmp_path)
    (root / MODEL_TS).unlink()
    torch.save({"model": spleen_unet.state_dict(), "epoch": 3}, str(root / MODEL_PT))
    with torch.inference_mode():
        assert torch.equal(ModelBundle.load(root).network("cpu")(probe()), spleen_unet(probe()))


def test_weights_that_do_not_fit_network_def_name_both_files(zoo_bundle: Path, tmp_path: Path):
    root = copy_bundle(zoo_bundle, tmp_path)
    (root / MODEL_TS).unlink()
    torch.save(UNet(3, 1, 3, (4, 8), (2,)).state_dict(), str(root / MODEL_PT))
    with pytest.raises(ModelDirectoryError, match=r"models/model.pt does not fit network_def of configs/inference.json"):
        ModelBundle.load(root).network("cpu")


def test_an_inference_json_that_is_not_json_is_named_with_its_problem(zoo_bundle: Path, tmp_path: Path):
    root = copy_bundle(zoo_bundle, tmp_path)
    (root / INFERENCE_JSON).write_text('{"network_def": {"_target_": "UNet",}')
    with pytest.raises(ModelDirectoryError, match=r"configs/inference.json is not valid JSON \(.*line 1"):
        ModelBundle.load(root)


def test_an_inference_json_whose_network_def_cannot_be_built_is_named(zoo_bundle: Path, tmp_path: Path):
    root = copy_bundle(zoo_bundle, tmp_path)
    (root / MODEL_TS).unlink()
    _, inference = zoo_spleen_configs()
    inference["network_def"] = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1}
    (root / INFERENCE_JSON).write_text(json.dumps(inference))
    with pytest.raises(ModelDirectoryError, match=r"configs/inference.json cannot instantiate 'network_def'"):
        ModelBundle.load(root).network("cpu")


def test_an_inferer_that_cannot_be_built_is_refused_at_load(zoo_bundle: Path, tmp_path: Path):
    root = copy_bundle(zoo_bundle, tmp_path)
    _, inference = zoo_spleen_configs()
    inference["inferer"] = {"_target_": "NoSuchInferer", "roi_size": [96, 96, 96]}
    (root / INFERENCE_JSON).write_text(json.dumps(inference))
    with pytest.raises(ModelDirectoryError, match=r"configs/inference.json cannot instantiate 'inferer'"):
        ModelBundle.load(root)


def test_metadata_without_channel_def_says_where_the_labels_come_from(zoo_bundle: Path, tmp_path: Path):
    root = copy_bundle(zoo_bundle, tmp_path)
    metadata, _ = zoo_spleen_configs()
    del metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
    (root / METADATA_JSON).write_text(json.dumps(metadata))
    with pytest.raises(ModelDirectoryError, match=r"configs/metadata.json has no usable .*outputs.pred.channel_def"):
        ModelBundle.load(root)


def test_a_bundle_with_no_network_file_is_refused(zoo_bundle: Path, tmp_path: Path):
    root = copy_bundle(zoo_bundle, tmp_path)
    (root / MODEL_TS).unlink()
    (root / MODEL_PT).unlink()
    with pytest.raises(ModelDirectoryError, match=r"has no network: a bundle needs models/model.ts, or models/model.pt"):
        ModelBundle.load(root)


def test_the_old_model_directory_is_refused_naming_the_bundle_layout(tmp_path: Path):
    (tmp_path / "model.ts").write_bytes(b"")
    (tmp_path / "metadata.json").write_text("{}")
    with pytest.raises(ModelDirectoryError, match=r"is not a MONAI bundle: configs/metadata.json is missing"):
        ModelBundle.load(tmp_path)


def _zip(bundle: Path, archive: Path, prefix: str) -> Path:
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                zipped.write(path, prefix + path.relative_to(bundle).as_posix())
    return archive


def test_a_zoo_zip_with_its_folder_loads(zoo_bundle: Path, tmp_path: Path):
    archive = _zip(zoo_bundle, tmp_path / "spleen_ct_segmentation_v0.2.0.zip", "spleen_ct_segmentation/")
    work = tmp_path / "work"
    work.mkdir()
    bundle = ModelBundle.load(archive, workdir=work)
    assert bundle.root.is_relative_to(work)
    assert bundle.description == ModelBundle.load(zoo_bundle).description
    assert isinstance(bundle.network("cpu"), torch.jit.ScriptModule)


def test_a_sagemaker_model_tar_gz_loads(zoo_bundle: Path, tmp_path: Path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        for path in sorted(zoo_bundle.iterdir()):
            tarred.add(path, arcname=path.name)  # SageMaker packs the model directory's contents at the top
    bundle = ModelBundle.load(archive)
    assert bundle.description.labels == {0: "background", 1: "spleen"}
    assert bundle.description.name == "model"
    assert isinstance(bundle.network("cpu"), torch.jit.ScriptModule)


@pytest.mark.parametrize("name", ["../escape.json", "/abs/escape.json", "configs/../../escape.json"])
def test_an_archive_member_outside_the_bundle_is_refused(zoo_bundle: Path, tmp_path: Path, name: str):
    archive = _zip(zoo_bundle, tmp_path / "evil.zip", "")
    with zipfile.ZipFile(archive, "a") as zipped:
        zipped.writestr(name, "{}")
    with pytest.raises(ModelDirectoryError, match="has a member outside the bundle"):
        open_bundle(archive, tmp_path / "work")
    assert not (tmp_path / "escape.json").exists()


def test_a_tar_with_a_link_is_refused(zoo_bundle: Path, tmp_path: Path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        tarred.add(zoo_bundle / "configs", arcname="configs")
        link = tarfile.TarInfo("models/model.ts")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tarred.addfile(link)
    with pytest.raises(ModelDirectoryError, match=r"not a file or folder \('models/model.ts'\)"):
        open_bundle(archive, tmp_path / "work")


def test_an_archive_over_the_size_bound_is_refused_before_unpacking(zoo_bundle: Path, tmp_path: Path):
    archive = tmp_path / "big.tar.gz"
    payload = b"\0" * 4096
    with tarfile.open(archive, "w:gz") as tarred:
        info = tarfile.TarInfo("models/model.pt")
        info.size = len(payload)
        tarred.addfile(info, io.BytesIO(payload))
    with pytest.raises(ModelDirectoryError, match="unpacks to 4096 bytes, over the 1000-byte limit"):
        open_bundle(archive, tmp_path / "work", max_bytes=1000)
    assert not (tmp_path / "work" / "bundle" / "models").exists()


def test_the_testkit_bundles_are_the_zoo_layout_alone(threshold_model_dir: Path, tmp_path: Path):
    for relative in (METADATA_JSON, INFERENCE_JSON, MODEL_TS, MODEL_PT):
        assert (threshold_model_dir / relative).is_file(), relative
    # Nothing of the retired contract beside them: configs/ and models/ only.
    assert sorted(p.name for p in threshold_model_dir.iterdir()) == ["configs", "models"]
    parser = ConfigParser()
    parser.read_config(str(threshold_model_dir / INFERENCE_JSON))
    # MONAI builds the network from network_def alone; the weights-only path then gives the scripted output.
    assert isinstance(parser.get_parsed_content("network_def"), torch.nn.Module)
    scripted = ModelBundle.load(threshold_model_dir).network("cpu")
    weights_only = copy_bundle(threshold_model_dir, tmp_path)
    (weights_only / MODEL_TS).unlink()
    bundle = ModelBundle.load(weights_only)
    eager = bundle.network("cpu")
    x = torch.rand(1, 1, 8, 8, 8)
    assert torch.equal(eager(x), scripted(x))
    assert bundle.description.extra["reference_model"]["kind"] == "threshold"


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("spleen_ct_segmentation", "spleen_ct_segmentation"),  # the zoo's own folder names an unnamed bundle
        ("zoo-spleen/1", "zoo-spleen"),  # a Triton version folder: the model is named by the folder above it
    ],
)
def test_a_bundle_without_a_name_is_named_by_its_folder(zoo_bundle: Path, tmp_path: Path, layout: str,
                                                        expected: str):
    target = tmp_path / layout
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(zoo_bundle, target)
    metadata = json.loads((target / METADATA_JSON).read_text())
    assert "name" not in metadata  # as zoo_spleen_configs writes it
    assert ModelBundle.load(target).description.name == expected
