"""The DICOM header of every frame of a series, built from what the frames share plus what each adds.

The frames of a series repeat almost every attribute: in a CT series only the instance's position, number
and UID differ. So the attributes equal in every frame are converted once, to immutable encoded elements
(``RawDataElement``, how pydicom holds a freshly read file; each dataset turns one into a ``DataElement`` of
its own on first access, so sharing them is safe), and each frame's dataset starts as a copy of that
dictionary. Only the attributes that vary go through the per-key conversion of ``dicom_json``. This work
holds the GIL the fetch threads need, so its cost per frame matters as much as the decoder's.
"""

from __future__ import annotations

from collections.abc import Sequence

import pydicom
from pydicom import DataElement
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from model_code.healthimaging.dicom_json import ElementCache, encoded_element, new_element, plain_text_element
from model_code.healthimaging.document import FramePlan

_MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
_MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
_TRANSFER_SYNTAX_UID = 0x00020010
_IMPLEMENTATION_CLASS_UID = 0x00020012


_MISSING = object()


def shared_keys(plans: Sequence[FramePlan]) -> frozenset[str]:
    """Keys with the same value (and value type), VR override and pixel signedness in every plan.

    Key by key over all plans, so the comparisons run in C (``list.count``, ``set(map(type, ...))``).
    """
    first = plans[0]
    if any(plan.pixel_format.signed != first.pixel_format.signed for plan in plans):
        return frozenset()
    keys = []
    for key, value in first.attributes.items():
        values = [plan.attributes.get(key, _MISSING) for plan in plans]
        overrides = [plan.vrs.get(key) for plan in plans]
        if (
            values.count(value) == len(plans)
            and len(set(map(type, values))) == 1
            and overrides.count(overrides[0]) == len(plans)
        ):
            keys.append(key)
    return frozenset(keys)


class SeriesHeaders:
    """``build(plan)``: the single-frame instance of one planned frame, header only, file meta set."""

    def __init__(self, plans: Sequence[FramePlan]) -> None:
        self._cache = ElementCache()
        first = plans[0]
        signed = first.pixel_format.signed
        self._shared: dict[BaseTag, RawDataElement] = {}
        shared_keys_encoded: set[str] = set()
        for key in shared_keys(plans) if len(plans) > 1 else ():
            resolved = self._cache.resolve(key, first.vrs.get(key), signed=signed)
            if resolved is None or resolved[1] == "SQ":
                continue  # sequences hold datasets of their own: every frame gets fresh ones
            tag, vr = resolved
            element = new_element(tag, vr, first.attributes[key], first.vrs, signed=signed, cache=self._cache)
            raw = encoded_element(element)
            if raw is not None:
                self._shared[tag] = raw
                shared_keys_encoded.add(key)
        self._shared_keys = frozenset(shared_keys_encoded)
        self._meta_shared = {
            BaseTag(_TRANSFER_SYNTAX_UID): _raw_uid(_TRANSFER_SYNTAX_UID, ExplicitVRLittleEndian),
            BaseTag(_IMPLEMENTATION_CLASS_UID): _raw_uid(_IMPLEMENTATION_CLASS_UID, PYDICOM_IMPLEMENTATION_UID),
        }

    def build(self, plan: FramePlan) -> pydicom.Dataset:
        signed = plan.pixel_format.signed
        elements: dict[BaseTag, DataElement | RawDataElement] = dict(self._shared)
        for key, value in plan.attributes.items():
            if key in self._shared_keys:
                continue
            resolved = self._cache.resolve(key, plan.vrs.get(key), signed=signed)
            if resolved is not None:
                tag, vr = resolved
                elements[tag] = self._cache.element(key, tag, vr, value, plan.vrs, signed=signed)
        dataset = pydicom.Dataset(elements)
        meta: dict[BaseTag, DataElement | RawDataElement] = dict(self._meta_shared)
        # From the document, not the dataset: reading a shared element from the dataset would convert it.
        sop_class = str(plan.attributes.get("SOPClassUID") or "")
        sop_instance = str(plan.attributes.get("SOPInstanceUID") or plan.sop_instance_uid)
        for meta_tag, uid in (
            (_MEDIA_STORAGE_SOP_CLASS_UID, sop_class),
            (_MEDIA_STORAGE_SOP_INSTANCE_UID, sop_instance),
        ):
            meta_key = BaseTag(meta_tag)
            meta[meta_key] = plain_text_element(meta_key, "UI", uid) or DataElement(meta_key, "UI", uid)
        dataset.file_meta = FileMetaDataset(meta)
        return dataset


def _raw_uid(tag: int, uid: str) -> RawDataElement:
    raw = encoded_element(DataElement(tag, "UI", uid))
    if raw is None:  # a UID is ASCII: it always reads back as written
        raise ValueError(f"UID {uid!r} does not encode as a DICOM UI value")
    return raw
