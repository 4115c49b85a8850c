"""Where the results index keeps one record per result: a Hive-style partitioned layout in S3.

``<prefix>model_name=<name>/model_version=<version>/result_date=<YYYY-MM-DD>/<imageSetId>.json``, one JSON line
per object. The Glue table over it (stacks/inference/results_table.py) declares the same three partition keys, and
Athena prunes on them; the backfill lists ``<prefix>model_name=<name>/model_version=<version>/`` to learn which
image sets already have a result of that model version. Copied into every function's asset as the top-level module
``results_layout`` (stacks/components/function_shared/__init__.py), so it uses the standard library only.
"""

from __future__ import annotations

import re
from datetime import date

RESULTS_PREFIX = "results-index/"
RECORD_SUFFIX = ".json"
# Partition values become path segments and Athena literals: keep them to characters that need no escaping.
_PARTITION_VALUE = re.compile(r"^[A-Za-z0-9._+-]{1,128}$")
_IMAGE_SET_ID = re.compile(r"^[0-9a-z]{32}$")


def _checked(what: str, value: str) -> str:
    if not _PARTITION_VALUE.match(value):
        raise ValueError(
            f"{what} {value!r} cannot name a results partition: use 1-128 of letters, digits and . _ + -"
        )
    return value


def model_prefix(model_name: str, model_version: str, *, prefix: str = RESULTS_PREFIX) -> str:
    """Every result of one model version, whatever its date."""
    return (
        f"{prefix}model_name={_checked('model name', model_name)}/"
        f"model_version={_checked('model version', model_version)}/"
    )


def record_key(
    model_name: str, model_version: str, result_date: date, image_set_id: str, *, prefix: str = RESULTS_PREFIX
) -> str:
    """The one record of an image set's result for a model version (a rerun the same day overwrites it)."""
    if not _IMAGE_SET_ID.match(image_set_id):
        raise ValueError(f"image set ID {image_set_id!r} is not a HealthImaging ID (32 of [0-9a-z])")
    return (
        f"{model_prefix(model_name, model_version, prefix=prefix)}"
        f"result_date={result_date.isoformat()}/{image_set_id}{RECORD_SUFFIX}"
    )


def image_set_of(key: str) -> str | None:
    """The image set a record key names; ``None`` for any other object under the prefix."""
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(RECORD_SUFFIX):
        return None
    image_set_id = name[: -len(RECORD_SUFFIX)]
    return image_set_id if _IMAGE_SET_ID.match(image_set_id) else None
