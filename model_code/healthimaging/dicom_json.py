"""HealthImaging's metadata JSON <-> pydicom, attribute by attribute.

HealthImaging documents attributes by keyword (``"Rows": 512``), numbers as JSON numbers, decimal and
integer strings (DS, IS) as text, multi-valued attributes as lists, sequences as lists of objects and
binary values as base64 text. Private and unknown tags are keyed by their 8-digit hex tag, with their VR
listed in the instance's ``DICOMVRs`` map. This module converts both ways; it never touches pixel data.
"""

from __future__ import annotations

import base64
import re
import warnings
from collections.abc import Mapping
from functools import lru_cache
from io import BytesIO
from typing import Any

from pydicom import DataElement, Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import data_element_generator
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import PersonName

_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})
# Pixel data and its siblings travel as frames, never in the document.
_PIXEL_KEYWORDS = frozenset({"PixelData", "FloatPixelData", "DoubleFloatPixelData"})


@lru_cache(maxsize=4096)
def _standard(key: str) -> tuple[BaseTag, str | None] | None:
    """(tag, dictionary VR) for a keyword or hex tag; None when the key names nothing pydicom knows."""
    if _HEX_TAG.fullmatch(key):
        tag = Tag(int(key, 16))
    else:
        number = tag_for_keyword(key)
        if number is None:
            return None
        tag = Tag(number)
    try:
        return tag, dictionary_VR(tag)
    except KeyError:  # private or retired-unknown tag: its VR must come from DICOMVRs
        return tag, None


def _resolve_ambiguous(vr: str, *, signed: bool) -> str:
    # "US or SS" follows PixelRepresentation; LUT data and the rest default to their unsigned/byte reading.
    if vr == "US or SS":
        return "SS" if signed else "US"
    if vr == "OB or OW":
        return "OB"
    if vr in ("US or OW", "US or SS or OW"):
        return "US"
    return vr


def _value(vr: str, value: Any, vrs: Mapping[str, str], *, signed: bool, cache: ElementCache) -> Any:
    if value is None:
        return empty_value_for_VR(vr)  # what pydicom itself reads for a zero-length value
    if vr == "SQ":
        return Sequence([dataset_from_json(item, vrs, signed=signed, cache=cache) for item in value])
    if vr in _BINARY_VRS:
        if isinstance(value, list):
            value = "".join(value)
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    if vr == "PN" and isinstance(value, dict):  # DICOM-JSON style person name
        return value.get("Alphabetic", "")
    return value


class ElementCache:
    """Converts each attribute once per series and lets every later dataset share the converted value.

    ``headers.SeriesHeaders`` converts the attributes equal in every frame once, up front; this cache serves the
    rest, which may still repeat from frame to frame (a window setting shared by most slices, values in sequences):
    when a key's JSON value equals the one last converted, the dataset gets that attribute's encoded form, a pydicom
    ``RawDataElement`` (an immutable tuple: tag, VR and the value's little-endian bytes), instead of a new element.
    That is how pydicom itself holds a freshly read file: the raw element becomes a ``DataElement`` of that
    dataset's own on first access, so sharing one raw element is safe where sharing a ``DataElement`` is not
    (pydicom changes an element's value in place: ``ds.PatientName = ...`` would change every dataset at once).
    Building a dataset then costs a comparison and a dict entry per repeated attribute rather than an element copy,
    which matters because it holds the GIL the fetch threads need. Values whose encoding would not read back
    identically (text outside ASCII, whose bytes depend on the dataset's character set) and sequences are copied or
    rebuilt instead. One cache may serve several threads: entries are only added or replaced whole, and raw elements
    never change.
    """

    def __init__(self) -> None:
        # key -> (JSON value, its element, whether encoding it is still to be tried)
        self._last: dict[str, tuple[Any, DataElement | RawDataElement, bool]] = {}
        self._resolved: dict[tuple[str, str | None, bool], tuple[BaseTag, str] | None] = {}

    def resolve(self, key: str, override: str | None, *, signed: bool) -> tuple[BaseTag, str] | None:
        """(tag, VR) of a document key; None for keys pydicom cannot place and for file meta / pixel data."""
        memo = (key, override, signed)
        if memo not in self._resolved:
            known = None if key in _PIXEL_KEYWORDS else _standard(key)
            resolved = None
            if known is not None:
                tag, vr = known
                vr = override or vr
                if vr is not None and tag.group != 0x0002:  # group 2 is file meta, the Part-10 writer's job
                    resolved = tag, _resolve_ambiguous(vr, signed=signed)
            self._resolved[memo] = resolved
        return self._resolved[memo]

    def element(
        self, key: str, tag: BaseTag, vr: str, value: Any, vrs: Mapping[str, str], *, signed: bool
    ) -> DataElement | RawDataElement:
        last = self._last.get(key)
        if last is not None and vr == last[1].VR and type(last[0]) is type(value) and last[0] == value:
            shared, encodable = last[1], last[2]
            if isinstance(shared, RawDataElement):
                return shared
            if encodable:  # repeated for the first time: encode it once (attributes that vary never are)
                raw = encoded_element(shared)
                self._last[key] = (value, raw or shared, False)
                if raw is not None:
                    return raw
            return _clone(shared)
        element = plain_text_element(tag, vr, value) or new_element(tag, vr, value, vrs, signed=signed, cache=self)
        if vr != "SQ":  # sequences hold datasets: always built afresh
            self._last[key] = (value, element, True)
        return element


# The text VRs a frame's own attributes mostly have (SOPInstanceUID, InstanceNumber, ImagePositionPatient): a
# valid value of these is written as its text, so its encoded element can be made from the text directly,
# without an element to convert, validate and write (most of a frame header's cost). Anything else, or any
# value these patterns or lengths refuse, goes the general way, warnings included.
_PLAIN_TEXT = {
    "UI": (re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"), 64, b"\0"),  # no leading zeros (PS3.5 9.1)
    "IS": (re.compile(r"[+-]?[0-9]+"), 12, b" "),
    "DS": (re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"), 16, b" "),
}


def plain_text_element(tag: BaseTag, vr: str, value: Any) -> RawDataElement | None:
    """The encoded element of a valid UI, IS or DS value (text, a list of texts, or integers for IS), as
    pydicom reads it from an explicit VR little endian file; None for anything else."""
    rule = _PLAIN_TEXT.get(vr)
    if rule is None:
        return None
    pattern, longest, pad = rule
    items = value if isinstance(value, list) else [value]
    texts = []
    for item in items:
        text = str(item) if vr == "IS" and type(item) is int else item
        if type(text) is not str or len(text) > longest or pattern.fullmatch(text) is None:
            return None
        texts.append(text)
    if not texts:
        return None
    encoded = "\\".join(texts).encode("ascii")
    if len(encoded) % 2:
        encoded += pad
    return RawDataElement(tag, vr, len(encoded), encoded, 0, False, True)


def new_element(
    tag: BaseTag, vr: str, value: Any, vrs: Mapping[str, str], *, signed: bool, cache: ElementCache
) -> DataElement:
    """A fresh element of one document value (no sharing)."""
    return DataElement(tag, vr, _value(vr, value, vrs, signed=signed, cache=cache))


def encoded_element(element: DataElement) -> RawDataElement | None:
    """The element as pydicom reads it from an explicit VR little endian file, if that reads back unchanged."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp = DicomBytesIO()
            fp.is_little_endian, fp.is_implicit_VR = True, False
            write_data_element(fp, element)
            raw = next(data_element_generator(BytesIO(fp.getvalue()), False, True))
            if not isinstance(raw, RawDataElement):
                return None
            back = convert_raw_data_element(raw).value
    except Exception:
        return None
    same = type(back) is type(element.value) and back == element.value and str(back) == str(element.value)
    return raw if same else None


def _clone(element: DataElement) -> DataElement:
    """A copy that owns its value list; the items (numbers, strings, bytes) are immutable and shared."""
    copy = DataElement.__new__(DataElement)
    state = element.__dict__.copy()
    value = state["_value"]
    if isinstance(value, MultiValue):
        values = MultiValue.__new__(MultiValue)
        values.__dict__.update(value.__dict__)
        values.__dict__["_list"] = list(value)
        state["_value"] = values
    copy.__dict__ = state
    return copy


def dataset_from_json(
    attributes: Mapping[str, Any],
    vrs: Mapping[str, str] | None = None,
    *,
    signed: bool = False,
    cache: ElementCache | None = None,
) -> Dataset:
    """Build a Dataset from one level (or several merged levels) of a metadata document.

    ``signed`` resolves "US or SS" attributes (PixelRepresentation 1). Keys pydicom cannot place (an unknown
    keyword, a private tag without a VR) are left out rather than guessed. Pass one ``cache`` to every call
    of a series to convert repeated attributes once.
    """
    vrs = vrs or {}
    cache = cache or ElementCache()
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    for key, value in attributes.items():
        resolved = cache.resolve(key, vrs.get(key), signed=signed)
        if resolved is not None:
            elements[resolved[0]] = cache.element(key, resolved[0], resolved[1], value, vrs, signed=signed)
    return Dataset(elements)


def _json_value(vr: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if vr == "SQ":
        return [dataset_to_json(item)[0] for item in value]
    if vr in _BINARY_VRS:
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, MultiValue | list | tuple):
        return [_scalar(vr, item) for item in value]
    return _scalar(vr, value)


def _scalar(vr: str, value: Any) -> Any:
    if vr in _NUMBER_VRS:
        return float(value) if vr in ("FL", "FD") else int(value)
    if vr in ("DS", "IS"):
        # Keep the text as written: a DS re-rendered from float can change its last digit.
        original = getattr(value, "original_string", None)
        return original if original is not None else str(value)
    if isinstance(value, PersonName):
        return str(value)
    return str(value)


def dataset_to_json(dataset: Dataset) -> tuple[dict[str, Any], dict[str, str]]:
    """The HealthImaging JSON of a dataset's attributes (pixel data excluded) and its ``DICOMVRs`` map.

    Standard attributes are keyed by keyword; private ones by hex tag with their VR in the map.
    """
    attributes: dict[str, Any] = {}
    vrs: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values were validated when the dataset was read
        for element in dataset:
            keyword = keyword_for_tag(element.tag) if not element.tag.is_private else ""
            if element.tag.group == 0x0002 or keyword in _PIXEL_KEYWORDS:
                continue
            key = keyword or f"{int(element.tag):08X}"
            vr = str(element.VR)
            if not keyword or vr != _dictionary_vr(element.tag):
                vrs[key] = vr
            attributes[key] = _json_value(vr, element.value)
            if vr == "SQ":
                for item in element.value:
                    vrs.update(dataset_to_json(item)[1])
    return attributes, vrs


def _dictionary_vr(tag: BaseTag) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None
