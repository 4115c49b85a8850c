"""SNOMED CT codes for the segments of a SEG: a table of common structures, and a bundle's own codes.

Every SEG segment carries a Segmented Property Category and Type (DICOM PS3.3 C.8.20.2, Segment Description
macro). The table takes its codes from pydicom's copy of the DICOM PS3.16 context groups, never typed by hand:

* categories from CID 7150 "Segmentation Property Categories" (Anatomical Structure, Morphologically Abnormal
  Structure);
* types from CID 7151 "Segmentation Property Types" (which includes the anatomic structures of CID 4031
  "Common Anatomic Regions" used here), with laterality from CID 244 "Laterality" as the type modifier
  (Segmented Property Type Modifier Code Sequence) for left and right structures.

tests/model_code/core/test_segment_codes.py checks each entry against those context groups.

A bundle names structures the table lacks under :data:`CODES_KEY` in ``configs/metadata.json``, keyed by the
label as its ``channel_def`` spells it::

    "dicom_segment_codes": {
        "tumour": {
            "category": {"value": "49755003", "scheme": "SCT", "meaning": "Morphologically Abnormal Structure"},
            "type": {"value": "108369006", "scheme": "SCT", "meaning": "Neoplasm"},
            "modifier": {"value": "7771000", "scheme": "SCT", "meaning": "Left"}
        }
    }

(``modifier`` optional; a bundle's own code wins over the table's). A foreground label with neither is refused
when the bundle is loaded (:func:`resolve_codes`), naming the label and this key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from model_code.core.errors import ModelDirectoryError

CODES_KEY = "dicom_segment_codes"
BACKGROUND = "background"

ANATOMY = codes.cid7150.AnatomicalStructure  # SCT 91723000
ABNORMAL = codes.cid7150.MorphologicallyAbnormalStructure  # SCT 49755003
LEFT, RIGHT = codes.cid244.Left, codes.cid244.Right  # SCT 7771000, 24028007


@dataclass(frozen=True)
class SegmentCode:
    """The category, type and optional type modifier of one segment."""

    category: Code
    type: Code
    modifier: Code | None = None


def _anatomy(name: str, modifier: Code | None = None) -> SegmentCode:
    return SegmentCode(ANATOMY, getattr(codes.cid7151, name), modifier)


# Label names as bundles spell them (lower case; spaces, hyphens and underscores alike), after
# normalise_label. The zoo's abdominal bundles (spleen, BTCV multi-organ, pancreas, liver tumour) use these.
COMMON_STRUCTURES: dict[str, SegmentCode] = {
    "spleen": _anatomy("Spleen"),
    "liver": _anatomy("Liver"),
    "kidney": _anatomy("Kidney"),
    "kidneys": _anatomy("Kidney"),
    "left kidney": _anatomy("Kidney", LEFT),
    "right kidney": _anatomy("Kidney", RIGHT),
    "pancreas": _anatomy("Pancreas"),
    "stomach": _anatomy("Stomach"),
    "gallbladder": _anatomy("Gallbladder"),
    "esophagus": _anatomy("Esophagus"),
    "oesophagus": _anatomy("Esophagus"),
    "aorta": _anatomy("Aorta"),
    "inferior vena cava": _anatomy("InferiorVenaCava"),
    "ivc": _anatomy("InferiorVenaCava"),
    "portal vein": _anatomy("PortalVein"),
    "splenic vein": _anatomy("SplenicVein"),
    "adrenal gland": _anatomy("AdrenalGland"),
    "left adrenal gland": _anatomy("AdrenalGland", LEFT),
    "right adrenal gland": _anatomy("AdrenalGland", RIGHT),
    "duodenum": _anatomy("Duodenum"),
    "small intestine": _anatomy("SmallIntestine"),
    "colon": _anatomy("Colon"),
    "rectum": _anatomy("Rectum"),
    "bladder": _anatomy("Bladder"),
    "prostate": _anatomy("Prostate"),
    "uterus": _anatomy("Uterus"),
    "lung": _anatomy("Lung"),
    "left lung": _anatomy("Lung", LEFT),
    "right lung": _anatomy("Lung", RIGHT),
    "heart": _anatomy("Heart"),
    "trachea": _anatomy("Trachea"),
    "brain": _anatomy("Brain"),
    "brain stem": _anatomy("BrainStem"),
    "vertebra": _anatomy("Vertebra"),
    "femur": _anatomy("Femur"),
    "left femur": _anatomy("Femur", LEFT),
    "right femur": _anatomy("Femur", RIGHT),
    "tumor": SegmentCode(ABNORMAL, codes.cid7151.Neoplasm),
    "tumour": SegmentCode(ABNORMAL, codes.cid7151.Neoplasm),
    "neoplasm": SegmentCode(ABNORMAL, codes.cid7151.Neoplasm),
    "lesion": SegmentCode(ABNORMAL, codes.cid7151.Lesion),
    "mass": SegmentCode(ABNORMAL, codes.cid7151.Mass),
}


def normalise_label(label: str) -> str:
    return re.sub(r"[\s_\-]+", " ", label.strip().lower())


def is_background(index: int, label: str) -> bool:
    """Channel 0 and any channel named background carry no segment (the zoo's convention)."""
    return index == 0 or normalise_label(label) == BACKGROUND


def _code(document: Any, label: str, part: str) -> Code:
    try:
        return Code(value=str(document["value"]), scheme_designator=str(document["scheme"]),
                    meaning=str(document["meaning"]))
    except (KeyError, TypeError) as error:
        raise ModelDirectoryError(
            f"{CODES_KEY}.{label}.{part} in configs/metadata.json needs value, scheme and meaning "
            f'(e.g. {{"value": "78961009", "scheme": "SCT", "meaning": "Spleen"}}), got {document!r}'
        ) from error


def bundle_codes(metadata: Mapping[str, Any]) -> dict[str, SegmentCode]:
    """The bundle's own codes (:data:`CODES_KEY`), keyed by normalised label."""
    document = metadata.get(CODES_KEY) or {}
    if not isinstance(document, dict):
        raise ModelDirectoryError(f"{CODES_KEY} in configs/metadata.json must be an object keyed by label")
    own: dict[str, SegmentCode] = {}
    for label, entry in document.items():
        if not isinstance(entry, dict):
            raise ModelDirectoryError(f"{CODES_KEY}.{label} in configs/metadata.json must be an object")
        modifier = _code(entry["modifier"], label, "modifier") if entry.get("modifier") else None
        own[normalise_label(str(label))] = SegmentCode(
            _code(entry.get("category"), label, "category"), _code(entry.get("type"), label, "type"), modifier
        )
    return own


def resolve_codes(labels: Mapping[int, str], own: Mapping[str, SegmentCode] | None = None) -> dict[int, SegmentCode]:
    """A code per foreground channel: the bundle's own first, then the table; an unknown label is refused."""
    own = own or {}
    resolved: dict[int, SegmentCode] = {}
    unknown: list[str] = []
    for index, label in sorted(labels.items()):
        if is_background(index, label):
            continue
        key = normalise_label(label)
        code = own.get(key) or COMMON_STRUCTURES.get(key)
        if code is None:
            unknown.append(label)
        else:
            resolved[index] = code
    if unknown:
        raise ModelDirectoryError(
            f"no SNOMED CT code for the label {', '.join(map(repr, unknown))}: the platform's table of common "
            f"structures lacks it; add its codes to configs/metadata.json under {CODES_KEY}, e.g. "
            f'"{CODES_KEY}": {{"{unknown[0]}": {{"category": {{"value": "91723000", "scheme": "SCT", '
            '"meaning": "Anatomical Structure"}, "type": {"value": "<SNOMED CT id>", "scheme": "SCT", '
            '"meaning": "<its name>"}}} (docs/bundles.md)'
        )
    return resolved


def code_document(code: SegmentCode) -> dict[str, Any]:
    """``code`` as a :data:`CODES_KEY` entry (what :func:`bundle_codes` reads back)."""

    def one(part: Code) -> dict[str, str]:
        return {"value": part.value, "scheme": part.scheme_designator, "meaning": part.meaning}

    document = {"category": one(code.category), "type": one(code.type)}
    if code.modifier is not None:
        document["modifier"] = one(code.modifier)
    return document
