"""The table of common structures against the DICOM PS3.16 context groups, a bundle's own codes, refusals."""

from __future__ import annotations

import pydicom.sr._cid_dict as cid_dict
import pytest

from model_code.core.errors import ModelDirectoryError
from model_code.core.segment_codes import (
    ABNORMAL,
    ANATOMY,
    CODES_KEY,
    COMMON_STRUCTURES,
    SegmentCode,
    bundle_codes,
    code_document,
    normalise_label,
    resolve_codes,
)


def _in_cid(cid: int, value: str) -> bool:
    """Whether SNOMED CT ``value`` is a member of context group ``cid`` (pydicom's copy of PS3.16)."""
    from pydicom.sr.codedict import codes

    members = cid_dict.cid_concepts[cid].get("SCT", [])
    return any(getattr(codes.SCT, name).value == value for name in members)


@pytest.mark.parametrize("label", sorted(COMMON_STRUCTURES))
def test_every_entry_is_coded_from_the_segmentation_context_groups(label: str):
    code = COMMON_STRUCTURES[label]
    assert code.category.scheme_designator == code.type.scheme_designator == "SCT"
    assert _in_cid(7150, code.category.value), "category: CID 7150 Segmentation Property Categories"
    assert _in_cid(7151, code.type.value), "type: CID 7151 Segmentation Property Types"
    assert (code.category == ANATOMY) != (code.category == ABNORMAL)
    if code.modifier is not None:
        assert _in_cid(244, code.modifier.value), "modifier: CID 244 Laterality"
    assert normalise_label(label) == label


def test_the_abdominal_organs_are_also_common_anatomic_regions():
    # CID 4031 Common Anatomic Regions holds the organs a CT bundle segments most.
    for label in ("pancreas", "stomach", "gallbladder", "duodenum", "colon"):
        assert _in_cid(4031, COMMON_STRUCTURES[label].type.value), label


def test_labels_are_matched_however_a_bundle_spells_them():
    labels = {0: "background", 1: "Spleen", 2: "right_kidney", 3: "Left-Kidney", 4: "IVC"}
    resolved = resolve_codes(labels)
    assert set(resolved) == {1, 2, 3, 4}
    assert resolved[1].type.meaning == "Spleen"
    assert (resolved[2].type.meaning, resolved[2].modifier.meaning) == ("Kidney", "Right")  # type: ignore[union-attr]
    assert resolved[3].modifier.meaning == "Left"  # type: ignore[union-attr]
    assert resolved[4].type.meaning == "Inferior vena cava"


def test_an_unknown_label_is_refused_naming_it_and_the_key():
    with pytest.raises(ModelDirectoryError, match=rf"no SNOMED CT code for the label 'portal and splenic vein'.*{CODES_KEY}"):
        resolve_codes({0: "background", 1: "spleen", 2: "portal and splenic vein"})


def test_a_bundles_own_code_supplies_a_label_and_wins_over_the_table():
    document = {
        CODES_KEY: {
            "Portal and splenic vein": {
                "category": {"value": "91723000", "scheme": "SCT", "meaning": "Anatomical Structure"},
                "type": {"value": "32764006", "scheme": "SCT", "meaning": "Portal vein"},
            },
            "spleen": code_document(SegmentCode(ABNORMAL, COMMON_STRUCTURES["tumour"].type)),
        }
    }
    resolved = resolve_codes({0: "background", 1: "spleen", 2: "portal and splenic vein"}, bundle_codes(document))
    assert resolved[2].type.value == "32764006"
    assert resolved[1].category == ABNORMAL


def test_a_malformed_own_code_says_what_it_needs():
    with pytest.raises(ModelDirectoryError, match=rf"{CODES_KEY}.tumour.type in configs/metadata.json needs value"):
        bundle_codes({CODES_KEY: {"tumour": {"category": code_document(COMMON_STRUCTURES["tumour"])["category"],
                                             "type": {"value": "108369006"}}}})


def test_code_documents_round_trip_with_modifiers():
    code = COMMON_STRUCTURES["left kidney"]
    assert bundle_codes({CODES_KEY: {"left kidney": code_document(code)}}) == {"left kidney": code}
