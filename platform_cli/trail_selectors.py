"""Whether a CloudTrail trail's event selectors record a data event, read the way CloudTrail reads them.

`monai-platform doctor` runs it over a trail's GetEventSelectors answer (the platform's own trail, or the
organization trail named by ``audit.organizationTrailArn``); the compliance tests run it over the synthesized
trails to hold every acknowledgment that names CloudTrail to the truth (tests/stacks/controls.py).

Advanced selectors (CloudTrail API Reference, AdvancedEventSelector / AdvancedFieldSelector): an event is logged
when any selector matches; a selector matches when every field selector matches; a field selector matches when
each of its operators holds (Equals, StartsWith, EndsWith: any value; NotEquals, NotStartsWith, NotEndsWith: no
value). A field this module cannot evaluate makes its selector not match: coverage is never assumed.
Basic selectors (EventSelector / DataResource) log S3 object events whose ARN starts with a listed value
(``arn:<partition>:s3`` alone: every bucket), filtered by ReadWriteType; they cannot log HealthImaging.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

S3_OBJECT = "AWS::S3::Object"
DATASTORE = "AWS::MedicalImaging::Datastore"
IMAGE_SET = "AWS::MedicalImaging::Imageset"
_SOURCES = {S3_OBJECT: "s3.amazonaws.com", DATASTORE: "medical-imaging.amazonaws.com",
            IMAGE_SET: "medical-imaging.amazonaws.com"}


@dataclass(frozen=True)
class DataEvent:
    """One data event a trail should record: an API call on one resource."""

    resource_type: str
    resource_arn: str
    event_name: str
    read_only: bool

    def field(self, name: str) -> str | None:
        return {
            "eventCategory": "Data",
            "resources.type": self.resource_type,
            "resources.ARN": self.resource_arn,
            "eventName": self.event_name,
            "readOnly": "true" if self.read_only else "false",
            "eventSource": _SOURCES.get(self.resource_type),
        }.get(name)

    def describe(self) -> str:
        return f"{self.event_name} on {self.resource_arn}"


def object_events(bucket_arn: str, *, writes: bool = True) -> list[DataEvent]:
    """Reading, deleting and (``writes``) writing an object of the bucket."""
    key = f"{bucket_arn}/probe/object"
    events = [DataEvent(S3_OBJECT, key, "GetObject", True), DataEvent(S3_OBJECT, key, "DeleteObject", False)]
    if writes:
        events.append(DataEvent(S3_OBJECT, key, "PutObject", False))
    return events


def datastore_events(datastore_arn: str) -> list[DataEvent]:
    """Reading an image set's metadata and frames, and searching the data store."""
    image_set = f"{datastore_arn}/imageset/0123456789abcdef0123456789abcdef"
    return [
        DataEvent(IMAGE_SET, image_set, "GetImageSetMetadata", True),
        DataEvent(IMAGE_SET, image_set, "GetImageFrame", True),
        DataEvent(DATASTORE, datastore_arn, "SearchImageSets", True),
    ]


_POSITIVE = {
    "Equals": lambda value, wanted: value == wanted,
    "StartsWith": lambda value, wanted: value.startswith(wanted),
    "EndsWith": lambda value, wanted: value.endswith(wanted),
}
_NEGATIVE = {"NotEquals": "Equals", "NotStartsWith": "StartsWith", "NotEndsWith": "EndsWith"}


def _field_matches(selector: Mapping[str, Any], event: DataEvent) -> bool:
    value = event.field(str(selector.get("Field")))
    if value is None:
        return False
    operators = [key for key in selector if key != "Field"]
    if not operators:
        return False
    for operator in operators:
        values = [str(v) for v in selector[operator]]
        if operator in _POSITIVE:
            if not any(_POSITIVE[operator](value, wanted) for wanted in values):
                return False
        elif operator in _NEGATIVE:
            if any(_POSITIVE[_NEGATIVE[operator]](value, wanted) for wanted in values):
                return False
        else:
            return False
    return True


def _basic_records(selector: Mapping[str, Any], event: DataEvent) -> bool:
    if event.resource_type != S3_OBJECT:
        return False
    read_write = selector.get("ReadWriteType", "All")
    if (read_write == "ReadOnly" and not event.read_only) or (read_write == "WriteOnly" and event.read_only):
        return False
    return any(
        resource.get("Type") == S3_OBJECT and any(event.resource_arn.startswith(str(v)) for v in resource["Values"])
        for resource in selector.get("DataResources", [])
    )


def records(selectors: Mapping[str, Any], event: DataEvent) -> bool:
    """Whether a trail with ``selectors`` (a GetEventSelectors answer, or a template's AdvancedEventSelectors under
    that key) logs ``event``."""
    advanced = selectors.get("AdvancedEventSelectors") or []
    if advanced:
        return any(
            all(_field_matches(field, event) for field in selector.get("FieldSelectors", []))
            for selector in advanced
        )
    return any(_basic_records(selector, event) for selector in selectors.get("EventSelectors") or [])


def unrecorded(selectors: Mapping[str, Any], events: Iterable[DataEvent]) -> list[DataEvent]:
    """The events of ``events`` the trail would not log."""
    return [event for event in events if not records(selectors, event)]
