"""``--init-bundle PATH``: start training from a MONAI bundle's weights (fine-tuning, e.g. the zoo's spleen model).

The bundle's ``network_def`` is built with MONAI's ``ConfigParser`` and must be the network this task trains
(same class, same arguments, same parameter names and shapes): fine-tuning changes the weights, never the
network. The weights come from ``models/model.pt`` (a state dict, or MONAI's ``{"model": state_dict}``
checkpoint), else from ``models/model.ts``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from model_code.core.bundle_layout import INFERENCE_JSON, MODEL_PT, MODEL_TS, open_bundle
from model_code.core.errors import ModelDirectoryError


class InitBundleError(ValueError):
    """The bundle cannot seed this training run; the message says why and what to do."""


def _same(a: Any, b: Any) -> bool:
    # JSON lists against tuples a network keeps: compare the values, not the container type.
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _reserved(key: str) -> bool:
    return key.startswith("_") and key.endswith("_")


def _check_network_def(parser: Any, network_def: dict[str, Any], source: Path) -> torch.nn.Module:
    if "network_def" not in parser:
        raise InitBundleError(
            f"--init-bundle {source}: {INFERENCE_JSON} has no network_def: not a bundle to train from"
        )
    try:
        bundle_network = parser.get_parsed_content("network_def")
    except Exception as error:  # ConfigParser raises whatever the component's constructor raises
        raise InitBundleError(f"--init-bundle {source}: its network_def cannot be built ({error})") from error
    # Keys like _target_, _requires_, _desc_ steer ConfigParser; the others are the constructor's arguments.
    ours = {k: v for k, v in network_def.items() if not _reserved(k)}
    theirs = {k: parser.get_parsed_content(f"network_def#{k}") for k in parser["network_def"] if not _reserved(k)}
    differences = [
        f"{key}: {theirs.get(key, '(unset)')!r} in the bundle, {ours.get(key, '(unset)')!r} here"
        for key in sorted(set(ours) | set(theirs))
        if not _same(theirs.get(key), ours.get(key))
    ]
    target = str(network_def["_target_"])
    if type(bundle_network).__name__ != target.rsplit(".", 1)[-1]:
        differences.insert(0, f"network: {type(bundle_network).__name__} in the bundle, {target} here")
    if differences:
        raise InitBundleError(
            f"--init-bundle {source}: its network_def is not the network this task trains ({'; '.join(differences)}): "
            "fine-tuning keeps the network as it is; start from a bundle of the same network, or train from scratch"
        )
    return bundle_network  # type: ignore[no-any-return]


def _state_dict(root: Path, source: Path) -> dict[str, torch.Tensor]:
    if (root / MODEL_PT).is_file():
        loaded = torch.load(root / MODEL_PT, map_location="cpu", weights_only=True)
        # MONAI's CheckpointSaver writes {"model": state_dict, ...}; the zoo ships the bare state dict.
        if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
            loaded = loaded["model"]
        if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise InitBundleError(f"--init-bundle {source}: {MODEL_PT} is not a state dict (nor {{'model': ...}})")
        return loaded
    if (root / MODEL_TS).is_file():
        return dict(torch.jit.load(str(root / MODEL_TS), map_location="cpu").state_dict())
    raise InitBundleError(f"--init-bundle {source}: the bundle has neither {MODEL_PT} nor {MODEL_TS}: no weights")


def load_bundle_weights(source: Path, model: torch.nn.Module, *, network_def: dict[str, Any]) -> None:
    """Copy the bundle's weights into ``model`` after checking its network_def is ``network_def``'s network."""
    from monai.bundle import ConfigParser

    source = Path(source)
    with tempfile.TemporaryDirectory(prefix="init-bundle-") as work:
        try:
            root = open_bundle(source, Path(work))
        except ModelDirectoryError as error:
            raise InitBundleError(f"--init-bundle {source}: {error}") from error
        if not (root / INFERENCE_JSON).is_file():
            raise InitBundleError(f"--init-bundle {source}: {INFERENCE_JSON} is missing: it defines the network")
        parser = ConfigParser()
        try:
            parser.read_config(str(root / INFERENCE_JSON))
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            raise InitBundleError(f"--init-bundle {source}: {INFERENCE_JSON} is not valid JSON ({error})") from error
        bundle_network = _check_network_def(parser, network_def, source)
        state = _state_dict(root, source)
    expected = {k: tuple(v.shape) for k, v in bundle_network.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        wrong = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))[:5]
        raise InitBundleError(
            f"--init-bundle {source}: its weights do not fit its network_def (first differing tensors: {wrong}): "
            "the bundle is inconsistent; export it again"
        )
    model.load_state_dict(state, strict=True)
