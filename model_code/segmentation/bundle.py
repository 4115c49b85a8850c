"""MONAI bundles in and out, read with MONAI's own ``ConfigParser``.

:meth:`ModelBundle.load` opens a bundle (a directory, a ``.zip`` or a ``model.tar.gz``, see
``model_code.core.bundle_layout``), reads ``configs/metadata.json`` and ``configs/inference.json`` with
``monai.bundle.ConfigParser`` and describes the model in the core's MONAI-free terms (:class:`ModelMetadata`):
labels from ``network_data_format.outputs.pred.channel_def``, the task from that output's ``format``, the
network from ``network_def``, pre-processing and sliding-window settings from the instantiated ``preprocessing``
and ``inferer``. :meth:`ModelBundle.network` loads ``models/model.ts`` when present, else builds ``network_def``
and loads ``models/model.pt`` into it. :func:`write_bundle` writes the Model Zoo's layout.

A bundle's configs are code (``$`` expressions run when parsed): load bundles you trust, as any model file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser

from model_code.core.bundle_layout import INFERENCE_JSON, LAYOUT, METADATA_JSON, MODEL_PT, MODEL_TS, open_bundle
from model_code.core.errors import ModelDirectoryError
from model_code.core.model_dir import InferenceSpec, ModelMetadata, NetworkSpec, Preprocessing
from model_code.core.segment_codes import CODES_KEY, bundle_codes, code_document, resolve_codes

__all__ = ["ModelBundle", "open_bundle", "write_bundle", "zoo_inference_config"]

# The Model Zoo's metadata schema: named, as the zoo names it, never fetched here.
ZOO_SCHEMA = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json"
TASKS = ("segmentation", "classification")
# Config ids the platform reads; a bundle may carry any others (datasets, evaluators), left unparsed.
NETWORK_DEF, PREPROCESSING, INFERER, POSTPROCESSING = "network_def", "preprocessing", "inferer", "postprocessing"
CONFIG_IDS = (NETWORK_DEF, PREPROCESSING, INFERER, POSTPROCESSING)


def _broken(path: Path, problem: str) -> ModelDirectoryError:
    return ModelDirectoryError(f"{path} {problem}")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise _broken(path, f"is missing: a MONAI bundle holds {LAYOUT}")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _broken(path, f"is not valid JSON ({error}): fix the file or re-export the bundle") from error
    if not isinstance(document, dict):
        raise _broken(path, f"holds a JSON {type(document).__name__}, not an object: a bundle config is an object")
    return document


def _pred_format(metadata: Mapping[str, Any], path: Path) -> dict[str, Any]:
    try:
        pred = metadata["network_data_format"]["outputs"]["pred"]
        channel_def = pred["channel_def"]
        if not isinstance(channel_def, dict) or not channel_def:
            raise TypeError("channel_def is not a non-empty object")
        return dict(pred)
    except (KeyError, TypeError) as error:
        raise _broken(
            path,
            f"has no usable network_data_format.outputs.pred.channel_def ({type(error).__name__}: {error}): "
            'the labels come from there, e.g. {"0": "background", "1": "spleen"}',
        ) from error


def _labels(pred: Mapping[str, Any], path: Path) -> dict[int, str]:
    try:
        return {int(k): str(v) for k, v in pred["channel_def"].items()}
    except ValueError as error:
        raise _broken(path, f"has a channel_def key that is not a channel number ({error})") from error


def _task(metadata: Mapping[str, Any], pred: Mapping[str, Any], path: Path) -> str:
    for candidate in (pred.get("format"), metadata.get("task")):
        if isinstance(candidate, str) and candidate.lower() in TASKS:
            return candidate.lower()
    raise _broken(
        path,
        f"does not say the task: network_data_format.outputs.pred.format is {pred.get('format')!r}, "
        f"not one of {', '.join(TASKS)}",
    )


def _network_spec(config: Mapping[str, Any]) -> NetworkSpec:
    network_def = config.get(NETWORK_DEF)
    if isinstance(network_def, dict) and isinstance(network_def.get("_target_"), str):
        args = {k: v for k, v in network_def.items() if not k.startswith("_")}
        return NetworkSpec(name=network_def["_target_"], args=args)
    return NetworkSpec(name="TorchScript", args={})


def _described_preprocessing(transforms: Sequence[Any]) -> Preprocessing:
    """The spleen-style pre-processing the core describes, read off the instantiated stock transforms."""
    from monai.transforms import Orientationd, ScaleIntensityRanged, Spacingd

    values: dict[str, Any] = {}
    for transform in transforms:
        if isinstance(transform, Orientationd) and transform.ornt_transform.axcodes:
            values["orientation"] = str(transform.ornt_transform.axcodes)
        elif isinstance(transform, Spacingd):
            pixdim = np.atleast_1d(np.asarray(transform.spacing_transform.pixdim, dtype=float))
            values["spacing_mm"] = tuple(float(v) for v in np.broadcast_to(pixdim, (3,)))
        elif isinstance(transform, ScaleIntensityRanged):
            scaler = transform.scaler
            values["intensity_window"] = (float(scaler.a_min), float(scaler.a_max))
            values["scaled_range"] = (float(scaler.b_min), float(scaler.b_max))  # type: ignore[arg-type]
            values["clip"] = bool(scaler.clip)
    return Preprocessing(**values)


def _transforms_of(compose: Any) -> list[Any]:
    from monai.transforms import Compose

    if isinstance(compose, Compose):
        return list(compose.transforms)
    if isinstance(compose, (list, tuple)):
        return list(compose)
    return [compose]


@dataclass
class ModelBundle:
    """One bundle on disk, parsed: ``parser`` is MONAI's ``ConfigParser`` over its metadata and inference
    configs (``bundle_root`` set to ``root``); ``description`` the core's view of it."""

    root: Path
    parser: ConfigParser
    description: ModelMetadata
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, source: Path, *, workdir: Path | None = None) -> ModelBundle:
        """Parse the bundle at ``source`` (directory, .zip or model.tar.gz). An archive unpacks under
        ``workdir`` (the caller's, kept as long as the bundle is used) or a temporary folder of the process."""
        if workdir is None and not Path(source).is_dir():
            workdir = Path(tempfile.mkdtemp(prefix="bundle-"))
        root = open_bundle(Path(source), workdir or Path(tempfile.gettempdir()))
        # An archive unpacked flat names nothing: its file name does (spleen.zip, model.tar.gz's folder).
        default_name = root.name if Path(source).is_dir() or root.name != "bundle" else Path(source).name.split(".")[0]
        if default_name.isdigit():  # a Triton version folder (<repository>/<model>/1): the model is named above it
            default_name = root.parent.name
        metadata_path, inference_path = root / METADATA_JSON, root / INFERENCE_JSON
        metadata, config = _read_json(metadata_path), _read_json(inference_path)
        parser = ConfigParser()
        try:
            parser.read_meta(metadata)
            parser.read_config(config)
        except (ValueError, TypeError, KeyError) as error:
            raise _broken(inference_path, f"is not a MONAI config ({type(error).__name__}: {error})") from error
        parser["bundle_root"] = str(root)
        if not (root / MODEL_TS).is_file() and not (NETWORK_DEF in config and (root / MODEL_PT).is_file()):
            raise ModelDirectoryError(
                f"{root} has no network: a bundle needs {MODEL_TS}, or {MODEL_PT} with network_def in {INFERENCE_JSON}"
            )
        pred = _pred_format(metadata, metadata_path)
        preprocessing = []
        if PREPROCESSING in config:
            preprocessing = _transforms_of(_parsed(parser, PREPROCESSING, inference_path))
        inference = InferenceSpec()
        if INFERER in config:
            inferer = _parsed(parser, INFERER, inference_path)
            inference = InferenceSpec(
                roi_size=tuple(int(v) for v in inferer.roi_size),  # type: ignore[arg-type]
                overlap=float(inferer.overlap),
                sw_batch_size=int(inferer.sw_batch_size),
            )
        known = {"name", "version", "task", "eval_metrics"}
        labels, task = _labels(pred, metadata_path), _task(metadata, pred, metadata_path)
        try:
            # A segmentation bundle's labels become SEG segments: each needs its code now, not at the first request.
            codes = resolve_codes(labels, bundle_codes(metadata)) if task == "segmentation" else {}
        except ModelDirectoryError as error:
            raise _broken(metadata_path, f"names a label the platform cannot code: {error}") from error
        description = ModelMetadata(
            name=str(metadata.get("name") or default_name),
            version=str(metadata.get("version", "0.0.0")),
            task=task,
            network=_network_spec(config),
            labels=labels,
            preprocessing=_described_preprocessing(preprocessing),
            inference=inference,
            metrics={str(k): float(v) for k, v in (metadata.get("eval_metrics") or {}).items()
                     if isinstance(v, (int, float))},
            extra={k: v for k, v in metadata.items() if k not in known},
            segment_codes=codes,
        )
        return cls(root=root, parser=parser, description=description, metadata=metadata)

    @property
    def inference_path(self) -> Path:
        return self.root / INFERENCE_JSON

    def parsed(self, config_id: str) -> Any:
        """``config_id`` of inference.json instantiated by MONAI; a clear error naming the file otherwise."""
        return _parsed(self.parser, config_id, self.inference_path)

    def network(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """``models/model.ts`` when present, else ``network_def`` with ``models/model.pt``; in eval mode."""
        device = torch.device(device)
        ts, pt = self.root / MODEL_TS, self.root / MODEL_PT
        if ts.is_file():
            try:
                network: torch.nn.Module = torch.jit.load(str(ts), map_location=device)
            except (RuntimeError, ValueError) as error:
                raise _broken(ts, f"cannot be loaded as TorchScript ({error}): save it with torch.jit.save") from error
            return network.eval()
        network = self.parsed(NETWORK_DEF)
        if not isinstance(network, torch.nn.Module):
            raise _broken(self.inference_path, f"network_def builds a {type(network).__name__}, not a torch module")
        try:
            checkpoint = torch.load(str(pt), map_location=device, weights_only=True)
        except (RuntimeError, ValueError, OSError, EOFError) as error:
            raise _broken(pt, f"cannot be read as a torch checkpoint ({error})") from error
        # The zoo's CheckpointLoader accepts a bare state_dict or one under "model"; so do we.
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
            checkpoint = checkpoint["model"]
        try:
            network.load_state_dict(checkpoint)
        except (RuntimeError, TypeError) as error:
            raise _broken(pt, f"does not fit network_def of {INFERENCE_JSON} ({error})") from error
        return network.to(device).eval()


def _parsed(parser: ConfigParser, config_id: str, path: Path) -> Any:
    if config_id not in parser:
        raise _broken(path, f"has no {config_id!r}: the platform reads {', '.join(CONFIG_IDS)}")
    try:
        return parser.get_parsed_content(config_id)
    except Exception as error:  # MONAI raises whatever the target's constructor raises; name it.
        raise _broken(path, f"cannot instantiate {config_id!r} ({type(error).__name__}: {error})") from error


def zoo_inference_config(
    description: ModelMetadata, *, network_def: Mapping[str, Any], extra_preprocessing: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """inference.json as the zoo's spleen bundle writes it, from ``description``'s pre-processing and
    sliding-window settings; ``extra_preprocessing`` transforms are appended after the intensity scaling."""
    pre, inference = description.preprocessing, description.inference
    return {
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        NETWORK_DEF: dict(network_def),
        "network": "$@network_def.to(@device)",
        PREPROCESSING: {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image"},
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {"_target_": "Orientationd", "keys": "image", "axcodes": pre.orientation},
                {"_target_": "Spacingd", "keys": "image", "pixdim": list(pre.spacing_mm), "mode": "bilinear"},
                {
                    "_target_": "ScaleIntensityRanged",
                    "keys": "image",
                    "a_min": pre.intensity_window[0],
                    "a_max": pre.intensity_window[1],
                    "b_min": pre.scaled_range[0],
                    "b_max": pre.scaled_range[1],
                    "clip": pre.clip,
                },
                *[dict(t) for t in extra_preprocessing],
                {"_target_": "EnsureTyped", "keys": "image"},
            ],
        },
        INFERER: {
            "_target_": "SlidingWindowInferer",
            "roi_size": list(inference.roi_size),
            "sw_batch_size": inference.sw_batch_size,
            "overlap": inference.overlap,
        },
        POSTPROCESSING: {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                {
                    "_target_": "Invertd",
                    "keys": "pred",
                    "transform": "@preprocessing",
                    "orig_keys": "image",
                    "nearest_interp": False,
                    "to_tensor": True,
                },
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            ],
        },
    }


def zoo_metadata(description: ModelMetadata) -> dict[str, Any]:
    """configs/metadata.json in the zoo's schema; the description's extra keys ride along."""
    import monai

    roi = list(description.inference.roi_size)
    labels = {str(k): v for k, v in sorted(description.labels.items())}
    own_codes = {description.labels[i]: code_document(c) for i, c in sorted(description.segment_codes.items())}
    return {
        **description.extra,
        **({CODES_KEY: own_codes} if own_codes else {}),
        "schema": ZOO_SCHEMA,
        "name": description.name,
        "version": description.version,
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {},
        "task": description.task,
        "description": description.extra.get("description", f"{description.name} ({description.task})"),
        "authors": description.extra.get("authors", "MONAI Imaging Platform"),
        "copyright": description.extra.get("copyright", "see the platform's licence"),
        "eval_metrics": dict(description.metrics),
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield",
                    "modality": "CT",
                    "num_channels": 1,
                    "spatial_shape": roi,
                    "dtype": "float32",
                    "value_range": list(description.preprocessing.scaled_range),
                    "is_patch_data": True,
                    "channel_def": {"0": "image"},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": description.task,
                    "num_channels": len(labels),
                    "spatial_shape": roi,
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": labels,
                }
            },
        },
    }


def write_bundle(
    out_dir: Path,
    *,
    network: torch.nn.Module,
    description: ModelMetadata,
    network_def: Mapping[str, Any] | None = None,
    inference_config: Mapping[str, Any] | None = None,
    scripted: bool = True,
) -> Path:
    """The zoo layout under ``out_dir``: configs/metadata.json, configs/inference.json, models/model.pt
    (``network``'s state_dict) and, when ``scripted``, models/model.ts (``torch.jit.script``). ``network_def``
    defaults to ``description.network`` as a ``_target_`` config; ``inference_config`` to
    :func:`zoo_inference_config`. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    (out_dir / METADATA_JSON).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_PT).parent.mkdir(parents=True, exist_ok=True)
    definition = dict(network_def or {"_target_": description.network.name, **description.network.args})
    config = dict(inference_config or zoo_inference_config(description, network_def=definition))
    ConfigParser.export_config_file(zoo_metadata(description), str(out_dir / METADATA_JSON), indent=4)
    ConfigParser.export_config_file(config, str(out_dir / INFERENCE_JSON), indent=4)
    network = network.eval()
    torch.save(network.state_dict(), str(out_dir / MODEL_PT))
    if scripted:
        torch.jit.script(network).save(str(out_dir / MODEL_TS))
    return out_dir
