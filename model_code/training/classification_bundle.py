"""A classification bundle (DenseNet121) read with MONAI's ``ConfigParser``, and its paths: ROC-AUC on a labelled
channel and an occlusion-sensitivity map, both with the bundle's own pre-processing and labels.

    python -m model_code.training.classification_bundle --bundle B --channel DIR [--occlusion-map IMG --out PNG]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_code.core.bundle_layout import INFERENCE_JSON, METADATA_JSON, MODEL_PT, MODEL_TS, open_bundle
from model_code.core.errors import ModelDirectoryError
from model_code.training.data_classification import read_channel
from model_code.training.data_errors import TrainingDataError

PRED_TYPE = "probabilities"  # network_data_format.outputs.pred.type of a classification bundle (the zoo's)


@dataclass
class ClassificationBundle:
    """The network (weights loaded, eval mode, CPU), the inference pre-processing and the class names."""

    name: str
    network: torch.nn.Module
    preprocessing: Any
    classes: list[str]

    @classmethod
    def load(cls, source: Path) -> ClassificationBundle:
        from monai.bundle import ConfigParser

        with tempfile.TemporaryDirectory(prefix="cls-bundle-") as work:
            root = open_bundle(Path(source), Path(work))
            for member in (INFERENCE_JSON, METADATA_JSON):
                if not (root / member).is_file():
                    raise ModelDirectoryError(f"{source}: {member} is missing (a MONAI bundle holds both configs)")
            parser = ConfigParser()
            try:
                parser.read_config(str(root / INFERENCE_JSON))
                parser.read_meta(str(root / METADATA_JSON))
            except ValueError as error:
                raise ModelDirectoryError(f"{source}: a config is not valid JSON ({error})") from error
            pred = parser.get("_meta_#network_data_format#outputs#pred", {})
            if pred.get("type") != PRED_TYPE:
                raise ModelDirectoryError(
                    f"{source}: network_data_format.outputs.pred.type is {pred.get('type')!r}, not {PRED_TYPE!r}: "
                    "not a classification bundle"
                )
            channel_def = {int(k): str(v) for k, v in pred.get("channel_def", {}).items()}
            if sorted(channel_def) != list(range(int(pred.get("num_channels", -1)))):
                raise ModelDirectoryError(
                    f"{source}: outputs.pred.channel_def {channel_def} must name each of its num_channels classes"
                )
            network = _network(parser, root, source)
            preprocessing = parser.get_parsed_content("preprocessing")
        return cls(name=str(parser.get("_meta_#name", root.name)), network=network, preprocessing=preprocessing,
                   classes=[channel_def[i] for i in sorted(channel_def)])

    def probabilities(self, image: Path) -> torch.Tensor:
        """[classes] softmax of one image, through the bundle's own pre-processing."""
        sample = self.preprocessing({"image": str(image)})["image"]
        with torch.no_grad():
            return torch.softmax(self.network(torch.as_tensor(sample)[None].float()), dim=1)[0]


def _network(parser: Any, root: Path, source: Path) -> torch.nn.Module:
    # The state dict into network_def when present (what MONAI's CheckpointLoader does), else the TorchScript.
    network: torch.nn.Module
    if (root / MODEL_PT).is_file():
        network = parser.get_parsed_content("network_def")
        network.load_state_dict(torch.load(root / MODEL_PT, map_location="cpu", weights_only=True))
    elif (root / MODEL_TS).is_file():
        network = torch.jit.load(str(root / MODEL_TS), map_location="cpu")
    else:
        raise ModelDirectoryError(f"{source}: neither {MODEL_PT} nor {MODEL_TS}: the bundle has no weights")
    return network.cpu().eval()


def evaluate(bundle: ClassificationBundle, channel: Path) -> dict[str, float]:
    """Macro ROC-AUC and accuracy of the bundle on a labelled channel (labels.csv beside the images)."""
    from monai.metrics import ROCAUCMetric

    data = read_channel(channel)
    unknown = sorted({case.label for case in data.cases} - set(bundle.classes))
    if unknown:
        raise TrainingDataError(f"{data.csv_path} has labels {unknown} the bundle does not know ({bundle.classes})")
    index = {name: i for i, name in enumerate(bundle.classes)}
    predictions = torch.stack([bundle.probabilities(case.image) for case in data.cases])
    targets = torch.tensor([index[case.label] for case in data.cases])
    metric = ROCAUCMetric(average="macro")
    metric(y_pred=predictions, y=torch.nn.functional.one_hot(targets, num_classes=len(bundle.classes)))
    auc = metric.aggregate()
    return {
        "val_auc": auc if isinstance(auc, float) else float(torch.as_tensor(auc).item()),
        "val_accuracy": float((predictions.argmax(dim=1) == targets).float().mean()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_code.training.classification_bundle",
                                     description="ROC-AUC and occlusion maps from a classification bundle.")
    parser.add_argument("--bundle", type=Path, required=True, help="bundle directory, .zip or model.tar.gz")
    parser.add_argument("--channel", type=Path, help="a labelled channel (labels.csv + images) to score")
    parser.add_argument("--occlusion-map", type=Path, help="an image to explain with an occlusion map")
    parser.add_argument("--out", type=Path, default=Path("occlusion_map.png"), help="where the map goes")
    args = parser.parse_args(argv)
    from model_code.training.occlusion import write_occlusion_map

    try:
        bundle = ClassificationBundle.load(args.bundle)
        report: dict[str, Any] = {"bundle": bundle.name, "classes": bundle.classes}
        if args.channel is not None:
            report.update(evaluate(bundle, args.channel))
        if args.occlusion_map is not None:
            report["occlusion_map"] = str(write_occlusion_map(
                model=bundle.network, transforms=bundle.preprocessing, image=args.occlusion_map,
                classes=bundle.classes, out_path=args.out))
    except (ModelDirectoryError, TrainingDataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
