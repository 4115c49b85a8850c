"""The spleen model contract (../shared/DESIGN.md): network arguments, labels, default metadata, which series
it reads, and the summary every serving path reports. The network itself needs MONAI: it is built in
``model_code.segmentation.networks``, outside the core."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from model_code.core.errors import InvalidSeriesError
from model_code.core.model_dir import InferenceSpec, ModelMetadata, NetworkSpec, Preprocessing
from model_code.core.segment_codes import is_background, normalise_label

if TYPE_CHECKING:
    import pydicom

    from model_code.core.dicom.series import ImageSeries

MODEL_NAME = "spleen_ct_segmentation"
SPLEEN_LABEL = 1
# The spleen model reads Hounsfield units (the torch pipeline and the edge runner accept the same modalities).
SUPPORTED_MODALITIES = ("CT",)

# The MONAI model-zoo spleen_ct_segmentation UNet, exactly as its bundle builds it.
SPLEEN_UNET_ARGS: dict[str, object] = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [16, 32, 64, 128, 256],
    "strides": [2, 2, 2, 2],
    "num_res_units": 2,
    "norm": "batch",
}


def spleen_metadata(*, version: str = "0.1.0", metrics: dict[str, float] | None = None) -> ModelMetadata:
    """The description of a spleen model (what the zoo's spleen bundle's configs/metadata.json says)."""
    return ModelMetadata(
        name=MODEL_NAME,
        version=version,
        task="segmentation",
        network=NetworkSpec(name="UNet", args=dict(SPLEEN_UNET_ARGS)),
        labels={0: "background", SPLEEN_LABEL: "spleen"},
        preprocessing=Preprocessing(),
        inference=InferenceSpec(),
        metrics=dict(metrics or {}),
    )


def input_modalities(metadata: ModelMetadata) -> tuple[str, ...]:
    """The modality a bundle's input declares (``network_data_format.inputs.image.modality``), else CT."""
    try:
        declared = metadata.extra["network_data_format"]["inputs"]["image"]["modality"]
    except (KeyError, TypeError):
        return SUPPORTED_MODALITIES
    return (str(declared).upper(),) if isinstance(declared, str) and declared else SUPPORTED_MODALITIES


def check_series(series: ImageSeries, *, modalities: tuple[str, ...] = SUPPORTED_MODALITIES,
                 model: str = "the spleen model") -> None:
    """Raises InvalidSeriesError for a series ``model`` cannot segment into a SEG."""
    if not series.datasets:
        raise InvalidSeriesError("the series has no source instances: a SEG must reference them")
    if series.modality not in modalities:
        wanted = "/".join(modalities)
        units = " (Hounsfield units)" if modalities == ("CT",) else ""
        raise InvalidSeriesError(
            f"{model} reads {wanted}{units}; this series is {series.modality or 'of no modality'}: "
            f"send the {wanted} series of the study",
            [series.series_instance_uid],
        )


def _extent(series: ImageSeries, binary: np.ndarray) -> tuple[int, float, list[float] | None]:
    """Voxel count, volume (mL) and centroid (LPS mm) of ``binary``."""
    voxels = int(binary.sum(dtype=np.int64))
    voxel_ml = abs(float(np.linalg.det(series.affine[:3, :3]))) / 1000.0
    centroid: list[float] | None = None
    if voxels:
        # Mean voxel index from the three marginal sums: no index list of every foreground voxel.
        # (Integer sums, one division: the same value as np.argwhere(mask).mean(axis=0).)
        index = []
        for axis in range(3):
            marginal = binary.sum(axis=tuple(a for a in range(3) if a != axis), dtype=np.int64)
            index.append(float(np.dot(marginal, np.arange(binary.shape[axis]))) / voxels)
        centroid = [round(float(v), 3) for v in (series.affine @ np.append(index, 1.0))[:3]]
    return voxels, round(voxels * voxel_ml, 3), centroid


def label_summary(metadata: ModelMetadata, series: ImageSeries, mask: np.ndarray) -> list[dict[str, Any]]:
    """One entry per SEG segment (foreground label, in channel order): its number, label, size and centroid."""
    entries = []
    channels = [index for index, label in sorted(metadata.labels.items()) if not is_background(index, label)]
    for number, channel in enumerate(channels, start=1):
        voxels, volume_ml, centroid = _extent(series, mask == channel)
        entries.append({"segment_number": number, "label": metadata.labels[channel], "channel": channel,
                        "voxel_count": voxels, "volume_ml": volume_ml, "centroid_lps_mm": centroid})
    return entries


def spleen_summary(
    metadata: ModelMetadata, series: ImageSeries, mask: np.ndarray, seg: pydicom.Dataset
) -> dict[str, Any]:
    """The summary keys every serving path reports first: model, UIDs, one entry per segment and, for a model
    with a spleen label, the spleen keys other code reads (spleen_volume_ml ...)."""
    segments = label_summary(metadata, series, mask)
    summary: dict[str, Any] = {
        "model": {"name": metadata.name, "version": metadata.version},
        "series_instance_uid": series.series_instance_uid,
        "seg_series_instance_uid": str(seg.SeriesInstanceUID),
        "seg_sop_instance_uid": str(seg.SOPInstanceUID),
    }
    spleen = [entry for entry in segments if normalise_label(entry["label"]) == "spleen"]
    if spleen:
        summary.update({
            "spleen_voxel_count": spleen[0]["voxel_count"],
            "spleen_volume_ml": spleen[0]["volume_ml"],
            "spleen_centroid_lps_mm": spleen[0]["centroid_lps_mm"],
        })
    summary["segments"] = segments
    return summary
