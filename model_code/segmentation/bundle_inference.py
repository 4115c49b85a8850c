"""A bundle's inference, planned once at load time: our fast path where it is exact, MONAI's own objects elsewhere.

The bundle's ``preprocessing``, ``inferer`` and ``postprocessing`` (``configs/inference.json``, instantiated by
``ConfigParser``) are read transform by transform:

* The fast path (``transforms_torch`` executing ``core.geometry`` plans, each pinned to MONAI's stock transform
  by tests/model_code/test_transforms_match_monai.py) runs ``Orientationd`` + ``Spacingd`` (bilinear, border,
  MONAI's defaults otherwise) and ``ScaleIntensityRanged``; ``LoadImaged`` is replaced by our DICOM loader and
  ``EnsureChannelFirstd`` / ``EnsureTyped`` are no-ops on our tensors. Any other stock transform after the
  geometry that keeps the grid (an intensity transform: ``NormalizeIntensityd``, ``GaussianSmoothd`` ...) runs
  through MONAI's own ``Compose`` on the model-grid volume, in the bundle's order. The inverse (``Invertd``)
  is ours, per channel; the activation (softmax / sigmoid) and ``AsDiscreted`` (argmax, threshold) are read
  off the bundle. A ``SlidingWindowInferer`` with constant blending on a two-class softmax model is ours (the
  logit-difference trick); any other inferer is the bundle's own object.
* Anything else (a spatial transform we do not implement, non-default resampling, a post-processing step we do
  not know) makes the whole bundle run as MONAI runs it: ``Compose`` of its pre-processing without
  ``LoadImaged`` on a ``MetaTensor`` laid out as ``LoadImaged`` gives it, its inferer, its post-processing
  without ``SaveImaged`` (``Invertd`` included). Slower, still right.
* A transform that cannot run on an in-memory volume (a file loader or writer inside the chain, a key other
  than the image) is refused when the bundle is loaded, naming it; the MONAI part of the chain is also run once
  on a small volume then, so a transform that fails on in-memory data is named before any request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import Inferer, SlidingWindowInferer
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Invertd,
    InvertibleTransform,
    LoadImaged,
    MapTransform,
    Orientationd,
    SaveImaged,
    ScaleIntensityRanged,
    Spacingd,
)

from model_code.core.errors import ModelDirectoryError
from model_code.core.geometry import LPS_TO_RAS, SLAB_SLICES, ResamplePlan, inverse_slabs, plan_resample
from model_code.segmentation.bundle import INFERER, POSTPROCESSING, PREPROCESSING, ModelBundle
from model_code.segmentation.transforms_torch import (
    foreground_probability,
    lerp_axis,
    mask_from_model_grid,
    scale_intensity,
    shares_memory,
    to_model_grid,
)

IMAGE_KEY, PRED_KEY = "image", "pred"
# Transforms with nothing to do on our tensors (we hold no channel axis and always hand torch tensors on).
NO_OPS = (EnsureChannelFirstd, EnsureTyped)
# Transforms that read or write files: meaningless on the in-memory volume our DICOM loader hands over.
FILE_IO = (LoadImaged, SaveImaged)
Network = Callable[[torch.Tensor], torch.Tensor]


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) else value


def _name(transform: Any) -> str:
    return type(transform).__name__


def _keys(transform: Any) -> tuple[str, ...]:
    return tuple(str(key) for key in transform.keys) if isinstance(transform, MapTransform) else ()


@dataclass(frozen=True)
class Scale:
    """ScaleIntensityRanged's arguments (our ``scale_intensity``)."""

    window: tuple[float, float]
    scaled_range: tuple[float, float]
    clip: bool


@dataclass(frozen=True)
class Output:
    """Post-processing as the fast path applies it after the inverse: activation, then argmax or threshold."""

    activation: str  # "softmax", "sigmoid" or "none"
    argmax: bool
    threshold: float | None


@dataclass
class BundleInference:
    """How one bundle is run; :meth:`predict` gives the label map on the series' own grid."""

    bundle: ModelBundle
    fast: bool
    reason: str  # why the whole bundle runs through MONAI (empty on the fast path)
    axcodes: str = "RAS"
    pixdim: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # The grid-keeping steps after the geometry, in the bundle's order: ours (Scale) or MONAI's (Compose).
    steps: list[Scale | Compose] = field(default_factory=list)
    inferer: Inferer | None = None
    output: Output = Output("softmax", True, None)
    monai_preprocessing: Compose | None = None
    monai_postprocessing: Compose | None = None
    # Source slices per step of the multi-class inverse (memory: C channels x a slab, never C volumes).
    inverse_slab: int = SLAB_SLICES

    @property
    def route(self) -> str:
        return "fast" if self.fast else "monai"

    @classmethod
    def plan(cls, bundle: ModelBundle) -> BundleInference:
        path = bundle.inference_path
        transforms = _chain(bundle.parsed(PREPROCESSING), path, PREPROCESSING)
        post = _chain(bundle.parsed(POSTPROCESSING), path, POSTPROCESSING) if POSTPROCESSING in bundle.parser else []
        inferer = bundle.parsed(INFERER)
        if not callable(inferer):
            raise ModelDirectoryError(f"{path} 'inferer' builds a {_name(inferer)}, not a MONAI inferer")
        loaded = _without_loader(transforms, path)
        # Indices in errors count the bundle's own list, loader included.
        _refuse_what_cannot_run_in_memory(loaded, path, PREPROCESSING, offset=len(transforms) - len(loaded))
        transforms = loaded
        _refuse_what_cannot_run_in_memory(post, path, POSTPROCESSING, allowed_keys=(PRED_KEY, IMAGE_KEY))
        post = [t for t in post if not isinstance(t, SaveImaged)]
        monai_pre = Compose(transforms)
        fast = cls._fast_plan(bundle, transforms, post, inferer)
        if fast is not None:
            fast.monai_preprocessing = monai_pre
            fast._dry_run()
            return fast
        if not any(isinstance(t, Invertd) for t in post):
            raise ModelDirectoryError(
                f"{path} 'postprocessing' has no Invertd: the prediction would stay on the model grid, and a SEG "
                "needs it on the series' own; add Invertd of @preprocessing (orig_keys image) as the zoo's bundles do"
            )
        slow = cls(bundle=bundle, fast=False, reason=_why_not_fast(transforms, post), inferer=inferer,
                   monai_preprocessing=monai_pre, monai_postprocessing=Compose(post))
        slow._dry_run()
        return slow

    @classmethod
    def _fast_plan(
        cls, bundle: ModelBundle, transforms: list[Any], post: list[Any], inferer: Any
    ) -> BundleInference | None:
        rest = [t for t in transforms if not isinstance(t, NO_OPS)]
        if len(rest) < 2 or not _our_orientation(rest[0]) or not _our_spacing(rest[1]):
            return None
        steps: list[Scale | Compose] = []
        for transform in rest[2:]:
            if isinstance(transform, ScaleIntensityRanged) and _our_scale(transform):
                scaler = transform.scaler
                steps.append(Scale((float(scaler.a_min), float(scaler.a_max)),
                                   (float(scaler.b_min), float(scaler.b_max)), bool(scaler.clip)))  # type: ignore[arg-type]
            elif isinstance(transform, InvertibleTransform):
                return None  # a grid-changing transform: the inverse must be MONAI's
            elif steps and isinstance(steps[-1], Compose):
                steps[-1] = Compose([*steps[-1].transforms, transform])
            else:
                steps.append(Compose([transform]))
        output = _our_output(post)
        if output is None:
            return None
        pixdim = np.broadcast_to(np.atleast_1d(np.asarray(rest[1].spacing_transform.pixdim, dtype=float)), (3,))
        return cls(bundle=bundle, fast=True, reason="", axcodes=str(rest[0].ornt_transform.axcodes),
                   pixdim=(float(pixdim[0]), float(pixdim[1]), float(pixdim[2])), steps=steps, inferer=inferer,
                   output=output)

    def with_sw_batch_size(self, sw_batch_size: int) -> BundleInference:
        """The same plan with another window batch (a server's setting); the bundle's inferer is copied."""
        inferer = self.inferer
        if isinstance(inferer, SlidingWindowInferer):
            inferer = SlidingWindowInferer(**{**_inferer_args(inferer), "sw_batch_size": sw_batch_size})
        return replace(self, inferer=inferer)

    @property
    def sw_batch_size(self) -> int | None:
        return int(self.inferer.sw_batch_size) if isinstance(self.inferer, SlidingWindowInferer) else None

    # -- running -------------------------------------------------------------------------------------------

    def predict(
        self, network: Network, volume: np.ndarray, affine_lps: np.ndarray, *, device: torch.device, amp: bool,
        stage: Callable[[str], contextlib.AbstractContextManager[None]] | None = None,
    ) -> np.ndarray:
        """The uint8 label map (channel index per voxel) on ``volume``'s grid (slice, row, col)."""
        stage = stage or (lambda name: contextlib.nullcontext())
        if not self.fast:
            return self._predict_monai(network, volume, affine_lps, device=device, amp=amp, stage=stage)
        with stage("preprocess"):
            plan, image = self.model_grid(volume, affine_lps, device=device)
        with stage("inference"):
            probability = self.probability(network, image, amp=amp, device=device)
        del image  # the inverse needs the probability only
        with stage("postprocess"):
            return self.labels(probability, plan)

    # The fast path's three steps, for a caller that lets go of what each step no longer needs between them
    # (the pipeline: the series' volume after the model grid, the model grid after the network).

    def model_grid(
        self, volume: np.ndarray, affine_lps: np.ndarray, *, device: torch.device
    ) -> tuple[ResamplePlan, torch.Tensor]:
        """The fast path's pre-processing: the plan and the (X, Y, Z) float32 image the network sees."""
        plan = plan_resample(affine_lps, volume.shape, pixdim=self.pixdim, axcodes=self.axcodes)
        source = torch.from_numpy(np.ascontiguousarray(volume)).to(device)  # int16 or float32
        image = to_model_grid(source, plan)  # float32, a slab at a time
        return plan, self._grid_steps(image, in_place=not shares_memory(image, source)).contiguous()

    def probability(self, network: Network, image: torch.Tensor, *, amp: bool, device: torch.device) -> torch.Tensor:
        """The network's activated output on the model grid: (X, Y, Z) for the two-class fast window, else
        (C, X, Y, Z)."""
        foreground = self._two_class_fast_window()
        if foreground is not None:
            return foreground_probability(network, image, amp=amp, **foreground)
        with _autocast(amp, device):
            logits = self.inferer(image[None, None], network)  # type: ignore[misc]
        return _activated(torch.as_tensor(logits)[0].float(), self.output.activation)

    def labels(self, probability: torch.Tensor, plan: ResamplePlan) -> np.ndarray:
        """:meth:`probability` inverted to the source grid as the uint8 label map, slab by slab."""
        if self._two_class_fast_window() is not None:
            # argmax over {background, foreground} == (p > 0.5), ties going to background; slab by slab.
            return mask_from_model_grid(probability, plan, threshold=0.5)
        return self._labels_on_source(probability, plan)

    def _grid_steps(self, image: torch.Tensor, *, in_place: bool = False) -> torch.Tensor:
        """``in_place``: ``image`` is the caller's own (not a view of the series' volume) and may be overwritten."""
        for step in self.steps:
            if isinstance(step, Scale):
                image = scale_intensity(image, window=step.window, scaled_range=step.scaled_range, clip=step.clip,
                                        in_place=in_place)
                in_place = True  # its output is ours
            else:
                data = step({IMAGE_KEY: MetaTensor(image[None])})
                # A MONAI transform returns new memory or its input's: ``in_place`` holds for its output too.
                image = torch.as_tensor(data[IMAGE_KEY])[0].to(image.device, torch.float32)
        return image

    def _two_class_fast_window(self) -> dict[str, Any] | None:
        """Our window arguments when ``foreground_probability`` is exactly the bundle's inferer + softmax."""
        inferer, output = self.inferer, self.output
        if not isinstance(inferer, SlidingWindowInferer) or self.bundle.description.labels.keys() != {0, 1}:
            return None
        if output.activation != "softmax" or not output.argmax:
            return None
        args = _inferer_args(inferer)
        defaults = _inferer_args(SlidingWindowInferer(roi_size=args["roi_size"]))
        ignored = {"roi_size", "sw_batch_size", "overlap", "progress"}
        if any(args[k] != defaults[k] for k in args if k not in ignored) or not isinstance(args["overlap"], float):
            return None
        return {"roi_size": tuple(int(v) for v in args["roi_size"]), "overlap": float(args["overlap"]),
                "sw_batch_size": int(args["sw_batch_size"])}

    def _labels_on_source(self, probability: torch.Tensor, plan: ResamplePlan) -> np.ndarray:
        """Every channel inverted to the source grid (``Invertd``, bilinear), then argmax or threshold, a slab of
        source slices at a time: the C full-resolution float volumes never exist together."""
        plan.check_model_shape(probability.shape[1:])
        source = probability.permute(0, *(axis + 1 for axis in plan.to_source_permutation))
        labels = np.empty(plan.source_shape, dtype=np.uint8)
        for part in inverse_slabs(plan, self.inverse_slab):
            out = source[:, part.rows]
            for k, coords in part.passes:
                out = lerp_axis(out, k + 1, coords)
            labels[part.out] = self._discrete(out)
        return labels

    def _discrete(self, probability: torch.Tensor) -> np.ndarray:
        if self.output.argmax:
            return probability.argmax(dim=0).to(torch.uint8).cpu().numpy()
        threshold = 0.5 if self.output.threshold is None else self.output.threshold
        if probability.shape[0] != 1:
            return probability.argmax(dim=0).to(torch.uint8).cpu().numpy()
        return (probability[0] > threshold).to(torch.uint8).cpu().numpy()

    def _predict_monai(
        self, network: Network, volume: np.ndarray, affine_lps: np.ndarray, *, device: torch.device, amp: bool,
        stage: Callable[[str], contextlib.AbstractContextManager[None]],
    ) -> np.ndarray:
        assert self.monai_preprocessing is not None
        assert self.monai_postprocessing is not None
        with stage("preprocess"):
            data = self.monai_preprocessing({IMAGE_KEY: loaded_image(volume, affine_lps)})
            image = data[IMAGE_KEY]
        with stage("inference"), _autocast(amp, device):
            data[PRED_KEY] = self.inferer(image[None].to(device), network)[0].float()  # type: ignore[misc]
        with stage("postprocess"):
            data[PRED_KEY] = MetaTensor(data[PRED_KEY].cpu(), meta=image.meta,
                                        applied_operations=image.applied_operations)
            pred = torch.as_tensor(self.monai_postprocessing(data)[PRED_KEY])
            labels = pred[0] if pred.shape[0] == 1 else pred.argmax(dim=0)
            # LoadImaged's (col, row, slice) order back to the series' (slice, row, col).
            return labels.permute(2, 1, 0).round().to(torch.uint8).cpu().numpy()

    def _dry_run(self) -> None:
        """Run the MONAI part of the chain on a small in-memory volume now, so a failure names its transform
        at load time rather than on the first request."""
        affine = np.diag([2.0, 1.0, 1.0, 1.0])
        volume = np.zeros((6, 12, 12), dtype=np.float32)
        try:
            if self.fast:
                plan = plan_resample(affine, volume.shape, pixdim=self.pixdim, axcodes=self.axcodes)
                self._grid_steps(to_model_grid(torch.from_numpy(volume), plan))
            else:
                assert self.monai_preprocessing is not None
                self.monai_preprocessing({IMAGE_KEY: loaded_image(volume, affine)})
        except Exception as error:  # MONAI names the transform ("applying transform ..."); we pass it on.
            raise ModelDirectoryError(
                f"{self.bundle.inference_path} 'preprocessing' cannot run on an in-memory volume "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else error}): only LoadImaged "
                "is replaced by the platform's DICOM loader; remove or replace that transform"
            ) from error


def loaded_image(volume: np.ndarray, affine_lps: np.ndarray) -> MetaTensor:
    """The series as MONAI's ``LoadImaged`` hands a DICOM series on: (col, row, slice) voxels, no channel axis,
    the RAS affine; ``EnsureChannelFirstd`` then adds the channel as it does after the loader."""
    permute = np.eye(4)[[2, 1, 0, 3]]  # (col, row, slice) index -> (slice, row, col) index
    affine = LPS_TO_RAS @ np.asarray(affine_lps, dtype=float) @ permute
    array = torch.from_numpy(np.ascontiguousarray(np.asarray(volume, dtype=np.float32).transpose(2, 1, 0)))
    # At construction: MetaTensor counts the spatial axes from "original_channel_dim" then (GaussianSmooth reads it).
    meta = {"original_channel_dim": "no_channel", "spatial_shape": np.asarray(array.shape),
            "filename_or_obj": "in-memory series"}
    image = MetaTensor(array, affine=torch.from_numpy(affine), meta=meta)
    return image


def _chain(value: Any, path: Any, config_id: str) -> list[Any]:
    if isinstance(value, Compose):
        return list(value.flatten().transforms)
    raise ModelDirectoryError(f"{path} {config_id!r} builds a {_name(value)}, not a Compose of transforms")


def _without_loader(transforms: list[Any], path: Any) -> list[Any]:
    if transforms and isinstance(transforms[0], LoadImaged):
        return transforms[1:]
    return transforms


def _refuse_what_cannot_run_in_memory(
    transforms: Sequence[Any], path: Any, config_id: str, allowed_keys: tuple[str, ...] = (IMAGE_KEY,), offset: int = 0
) -> None:
    for index, transform in enumerate(transforms, start=offset):
        if isinstance(transform, FILE_IO) and not (config_id == POSTPROCESSING and isinstance(transform, SaveImaged)):
            raise ModelDirectoryError(
                f"{path} {config_id!r} transform {index} ({_name(transform)}) reads or writes files and cannot run "
                "on an in-memory volume: only a first LoadImaged is replaced by the platform's DICOM loader"
            )
        other = [key for key in _keys(transform) if key not in allowed_keys]
        if other and not isinstance(transform, SaveImaged):
            raise ModelDirectoryError(
                f"{path} {config_id!r} transform {index} ({_name(transform)}) reads {', '.join(other)}: an inference "
                f"bundle's chain sees only {', '.join(allowed_keys)} (the series)"
            )


def _our_orientation(transform: Any) -> bool:
    ornt = getattr(transform, "ornt_transform", None)
    return (isinstance(transform, Orientationd) and ornt is not None and isinstance(ornt.axcodes, str)
            and not ornt.as_closest_canonical and ornt.labels in (None, (("L", "R"), ("P", "A"), ("I", "S"))))


def _our_spacing(transform: Any) -> bool:
    if not isinstance(transform, Spacingd):
        return False
    spacing = transform.spacing_transform
    pixdim = np.atleast_1d(np.asarray(spacing.pixdim, dtype=float))
    return (
        str(_first(transform.mode)) == "bilinear"
        and str(_first(transform.padding_mode)) == "border"
        and not _first(transform.align_corners)
        and not _first(transform.scale_extent)
        and not spacing.diagonal
        and not spacing.recompute_affine
        and bool(np.all(np.isnan(spacing.min_pixdim))) and bool(np.all(np.isnan(spacing.max_pixdim)))
        and pixdim.size in (1, 3) and bool(np.all(pixdim > 0))
    )


def _our_scale(transform: ScaleIntensityRanged) -> bool:
    scaler = transform.scaler
    return scaler.b_min is not None and scaler.b_max is not None and scaler.a_max != scaler.a_min


def _our_output(post: Sequence[Any]) -> Output | None:
    """The fast path's reading of ``postprocessing``, or None where only MONAI's own Compose can run it."""
    activation, argmax, threshold, inverted = "none", False, None, False
    for transform in post:
        if isinstance(transform, Activationsd):
            if _first(transform.softmax) and not _first(transform.sigmoid) and _first(transform.other) is None:
                activation = "softmax"
            elif _first(transform.sigmoid) and not _first(transform.softmax) and _first(transform.other) is None:
                activation = "sigmoid"
            else:
                return None
        elif isinstance(transform, Invertd):
            # Our inverse is bilinear on the activated channels, as Invertd with nearest_interp False.
            if inverted or activation == "none" or transform.nearest_interp[0] or transform.orig_keys[0] != IMAGE_KEY:
                return None
            inverted = True
        elif isinstance(transform, AsDiscreted):
            if not inverted or _first(transform.to_onehot) is not None or _first(transform.rounding) is not None:
                return None
            argmax = bool(_first(transform.argmax))
            value = _first(transform.threshold)
            threshold = float(value) if value is not None else None
            if argmax == (threshold is not None):
                return None
        elif isinstance(transform, NO_OPS):
            continue
        else:
            return None  # KeepLargestConnectedComponentd, FillHolesd ...: MONAI's own Compose runs them
    if activation == "none" or not (argmax or threshold is not None):
        return None
    return Output(activation, argmax, threshold)


def _why_not_fast(transforms: Sequence[Any], post: Sequence[Any]) -> str:
    rest = [t for t in transforms if not isinstance(t, NO_OPS)]
    if len(rest) < 2 or not _our_orientation(rest[0]) or not _our_spacing(rest[1]):
        return "the pre-processing does not start with Orientationd + Spacingd (bilinear, border)"
    spatial = [_name(t) for t in rest[2:] if isinstance(t, InvertibleTransform)]
    if spatial:
        return f"the pre-processing changes the grid after Spacingd ({', '.join(spatial)})"
    return f"the post-processing ({', '.join(_name(t) for t in post)}) is not activation, Invertd, AsDiscreted"


def _inferer_args(inferer: SlidingWindowInferer) -> dict[str, Any]:
    names = ("roi_size", "sw_batch_size", "overlap", "mode", "sigma_scale", "padding_mode", "cval", "sw_device",
             "device", "progress", "cpu_thresh", "buffer_steps", "buffer_dim", "with_coord")
    return {name: getattr(inferer, name) for name in names if hasattr(inferer, name)}


def _activated(logits: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "softmax":
        return torch.softmax(logits, dim=0)
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    return logits


def _autocast(amp: bool, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


__all__ = ["BundleInference", "Output", "ResamplePlan", "Scale", "loaded_image"]
