"""Training writes a MONAI bundle that MONAI's own tooling accepts, and ``--init-bundle`` fine-tunes from one."""

from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, verify_net_in_out

from model_code.core.spleen import spleen_metadata
from model_code.segmentation.bundle import ModelBundle
from model_code.segmentation.networks import build_spleen_unet
from model_code.training.config import parse_config
from model_code.training.environment import TrainingEnvironment
from model_code.training.init_bundle import InitBundleError
from model_code.training.loop import initial_model, make_task
from tests.model_code.training.conftest import run_args

INFERENCE, METADATA = "configs/inference.json", "configs/metadata.json"
# A parameter every spleen UNet has: the first convolution's kernel.
FIRST_CONV = "model.0.conv.unit0.conv.weight"


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory, segmentation_channel, tiny_segmentation, train) -> Path:
    run_dir = tmp_path_factory.mktemp("seg-bundle")
    train(run_dir, *tiny_segmentation, "--epochs", "1", "--train-channel", str(segmentation_channel),
          "--validation-channel", str(segmentation_channel))
    return run_dir / "model"


def _parser(bundle: Path) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(bundle / INFERENCE))
    parser.read_meta(str(bundle / METADATA))
    return parser


def test_the_bundle_is_in_the_zoo_layout_and_config_parser_builds_its_network(trained_bundle):
    for member in (INFERENCE, METADATA, "models/model.pt", "models/model.ts"):
        assert (trained_bundle / member).is_file(), member
    parser = _parser(trained_bundle)
    network = parser.get_parsed_content("network_def")
    assert type(network).__name__ == "UNet"
    network.load_state_dict(torch.load(trained_bundle / "models/model.pt", weights_only=True))
    network.eval()
    scripted = torch.jit.load(str(trained_bundle / "models/model.ts"))
    x = torch.rand(1, 1, 32, 16, 48)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network(x))
    names = [t["_target_"] for t in parser["preprocessing"]["transforms"]]
    assert names == ["LoadImaged", "EnsureChannelFirstd", "Orientationd", "Spacingd", "ScaleIntensityRanged",
                     "EnsureTyped"]
    assert parser.get_parsed_content("inferer").roi_size == [96, 96, 96]
    pred = parser["_meta_"]["network_data_format"]["outputs"]["pred"]
    assert pred["channel_def"] == {"0": "background", "1": "spleen"}
    assert parser["_meta_"]["eval_metrics"]["val_dice"] >= 0.0


def test_the_serving_side_reads_the_trained_bundle_as_the_spleen_contract(trained_bundle):
    # segmentation.bundle.ModelBundle (what the CLI, the endpoints and Triton load) sees the trained model.
    description = ModelBundle.load(trained_bundle).description
    expected = spleen_metadata()
    assert (description.name, description.task, description.labels, description.preprocessing,
            description.inference) == (expected.name, "segmentation", expected.labels, expected.preprocessing,
                                       expected.inference)
    assert (description.network.name, description.network.args) == ("UNet", expected.network.args)


def test_monai_verify_net_in_out_passes_on_the_written_bundle(trained_bundle):
    # The function `python -m monai.bundle verify_net_in_out` dispatches to, on the files as written
    # (n=2: 32^3 windows from the metadata's "16*n" shape).
    verify_net_in_out(net_id="network_def", meta_file=str(trained_bundle / METADATA),
                      config_file=str(trained_bundle / INFERENCE), device="cpu", n=2)


def test_verify_net_in_out_fails_when_the_metadata_lies(trained_bundle, tmp_path):
    # The check above can fail: a bundle claiming three output channels is refused by the same tooling.
    copy = shutil.copytree(trained_bundle, tmp_path / "bundle")
    document = json.loads((copy / METADATA).read_text())
    document["network_data_format"]["outputs"]["pred"]["num_channels"] = 3
    (copy / METADATA).write_text(json.dumps(document))
    with pytest.raises(ValueError, match="output channel number `2` doesn't match: `3`"):
        verify_net_in_out(net_id="network_def", meta_file=str(copy / METADATA), config_file=str(copy / INFERENCE),
                          device="cpu", n=2)


def _config(run_dir: Path, segmentation_channel: Path, tiny_segmentation: list[str], *extra: str):
    argv = run_args(run_dir, *tiny_segmentation, "--train-channel", str(segmentation_channel), *extra)
    return parse_config(argv, TrainingEnvironment.from_environ({}))


def _zip(bundle: Path, out: Path) -> Path:
    # As the zoo ships it: one folder named after the bundle.
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                archive.write(path, f"spleen_ct_segmentation/{path.relative_to(bundle).as_posix()}")
    return out


def _tar_gz(bundle: Path, out: Path) -> Path:
    # As SageMaker packs a training job's model directory: its files at the top.
    with tarfile.open(out, "w:gz") as archive:
        for path in sorted(bundle.iterdir()):
            archive.add(path, arcname=path.name)
    return out


@pytest.mark.parametrize("packing", ["directory", "zip", "tar.gz"])
def test_init_bundle_starts_from_the_bundles_weights(packing, trained_bundle, tmp_path, segmentation_channel,
                                                     tiny_segmentation):
    source = {"directory": lambda: trained_bundle, "zip": lambda: _zip(trained_bundle, tmp_path / "b.zip"),
              "tar.gz": lambda: _tar_gz(trained_bundle, tmp_path / "model.tar.gz")}[packing]()
    config = _config(tmp_path / "run", segmentation_channel, tiny_segmentation, "--init-bundle", str(source))
    model = initial_model(config, make_task(config))
    weights = torch.load(trained_bundle / "models/model.pt", weights_only=True)
    torch.testing.assert_close(model.state_dict()[FIRST_CONV], weights[FIRST_CONV], rtol=0, atol=0)
    # ...and not what the seed alone gives (the pair that makes the check above mean something).
    scratch = initial_model(_config(tmp_path / "scratch", segmentation_channel, tiny_segmentation),
                            make_task(config))
    assert not torch.equal(scratch.state_dict()[FIRST_CONV], weights[FIRST_CONV])


def test_init_bundle_reads_the_torchscript_when_the_bundle_has_no_state_dict(trained_bundle, tmp_path,
                                                                             segmentation_channel, tiny_segmentation):
    copy = shutil.copytree(trained_bundle, tmp_path / "bundle")
    (copy / "models/model.pt").unlink()
    config = _config(tmp_path / "run", segmentation_channel, tiny_segmentation, "--init-bundle", str(copy))
    model = initial_model(config, make_task(config))
    scripted = torch.jit.load(str(trained_bundle / "models/model.ts"))
    torch.testing.assert_close(model.state_dict()[FIRST_CONV], scripted.state_dict()[FIRST_CONV], rtol=0, atol=0)


def test_fine_tuning_keeps_the_network_and_changes_the_weights(trained_bundle, tmp_path, segmentation_channel,
                                                               tiny_segmentation, train):
    train(tmp_path, *tiny_segmentation, "--epochs", "1", "--learning-rate", "1e-2", "--init-bundle",
          str(trained_bundle), "--train-channel", str(segmentation_channel), "--validation-channel",
          str(segmentation_channel))
    tuned = tmp_path / "model"
    before, after = _parser(trained_bundle), _parser(tuned)
    assert after["network_def"] == before["network_def"]
    old = torch.load(trained_bundle / "models/model.pt", weights_only=True)
    new = torch.load(tuned / "models/model.pt", weights_only=True)
    assert {k: v.shape for k, v in new.items()} == {k: v.shape for k, v in old.items()}
    assert not torch.equal(new[FIRST_CONV], old[FIRST_CONV])  # it trained
    assert after["_meta_"]["hyperparameters"]["init_bundle"] == str(trained_bundle)
    verify_net_in_out(net_id="network_def", meta_file=str(tuned / METADATA), config_file=str(tuned / INFERENCE),
                      device="cpu", n=2)


def _edited(trained_bundle: Path, tmp_path: Path, *, replace: bool = False, **network_def: object) -> Path:
    copy = shutil.copytree(trained_bundle, tmp_path / "edited")
    document = json.loads((copy / INFERENCE).read_text())
    document["network_def"] = {**({} if replace else document["network_def"]), **network_def}
    (copy / INFERENCE).write_text(json.dumps(document))
    return copy


def test_a_bundle_of_another_network_is_refused_before_training(trained_bundle, tmp_path, segmentation_channel,
                                                                tiny_segmentation, train):
    other = _edited(trained_bundle, tmp_path, channels=[8, 16, 32, 64, 128])
    with pytest.raises(InitBundleError, match=r"network_def is not the network this task trains \(channels: "
                                              r"\[8, 16, 32, 64, 128\] in the bundle, \[16, 32, 64, 128, 256\] here"):
        train(tmp_path / "run", *tiny_segmentation, "--init-bundle", str(other), "--train-channel",
              str(segmentation_channel))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_bundle_of_another_class_is_refused(trained_bundle, tmp_path, segmentation_channel, tiny_segmentation):
    other = _edited(trained_bundle, tmp_path, replace=True, _target_="BasicUNet", spatial_dims=3, in_channels=1,
                    out_channels=2, features=[8, 8, 16, 32, 64, 8])
    config = _config(tmp_path / "run", segmentation_channel, tiny_segmentation, "--init-bundle", str(other))
    with pytest.raises(InitBundleError, match="network: BasicUNet in the bundle, UNet here"):
        initial_model(config, make_task(config))


def test_a_missing_or_broken_init_bundle_is_a_clear_error(trained_bundle, tmp_path, segmentation_channel,
                                                          tiny_segmentation):
    task_config = _config(tmp_path / "run", segmentation_channel, tiny_segmentation)
    task = make_task(task_config)
    missing = _config(tmp_path / "run", segmentation_channel, tiny_segmentation, "--init-bundle",
                      str(tmp_path / "nowhere"))
    with pytest.raises(InitBundleError, match="nowhere does not exist"):
        initial_model(missing, task)
    broken = shutil.copytree(trained_bundle, tmp_path / "broken")
    (broken / INFERENCE).write_text("{not json")
    config = _config(tmp_path / "run", segmentation_channel, tiny_segmentation, "--init-bundle", str(broken))
    with pytest.raises(InitBundleError, match=r"configs/inference\.json is not valid JSON"):
        initial_model(config, task)
    empty = shutil.copytree(trained_bundle, tmp_path / "empty")
    shutil.rmtree(empty / "models")
    config = _config(tmp_path / "run", segmentation_channel, tiny_segmentation, "--init-bundle", str(empty))
    with pytest.raises(InitBundleError, match=r"neither models/model\.pt nor models/model\.ts"):
        initial_model(config, task)


def test_the_zoo_spleen_network_def_is_the_one_segmentation_trains(trained_bundle):
    # The zoo's spleen_ct_segmentation declares "_target_": "UNet" with these arguments: what we train.
    zoo = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
           "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2, "norm": "batch"}
    assert _parser(trained_bundle)["network_def"] == zoo
    parser = ConfigParser({"network_def": zoo})
    zoo_net = parser.get_parsed_content("network_def")
    assert {k: v.shape for k, v in zoo_net.state_dict().items()} == {
        k: v.shape for k, v in build_spleen_unet().state_dict().items()}
