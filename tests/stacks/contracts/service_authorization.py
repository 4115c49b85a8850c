"""The Service Authorization Reference as parliament 1.6.4 carries it (``iam_definition.json``): every IAM action, the
resource types it is authorized against (``endpoint*`` = required) and each resource type's ARN format.

parliament lives in the tools venv (requirements-tools.txt, like checkov: it needs setuptools' pkg_resources, which
the main venv's setuptools no longer has), so the JSON is read from there as data; nothing of parliament is imported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from tests.stacks.contracts.recorder import PROJECT_ROOT

TOOLS_VENV = PROJECT_ROOT / ".venv-tools"


@dataclass(frozen=True)
class ResourceType:
    name: str
    required: bool
    arn_format: str  # "arn:${Partition}:s3:::${BucketName}/${ObjectName}"


@cache
def _definition() -> dict[str, dict[str, Any]]:
    found = sorted(TOOLS_VENV.glob("lib/python*/site-packages/parliament/iam_definition.json"))
    if not found:
        raise FileNotFoundError(f"parliament is not installed in {TOOLS_VENV}: run `make tools` "
                                "(requirements-tools.txt pins parliament)")
    services: dict[str, dict[str, Any]] = {}
    for service in json.loads(found[-1].read_text()):
        # A prefix can appear twice (a service renamed); merge them.
        entry = services.setdefault(service["prefix"], {"privileges": {}, "resources": {}})
        entry["privileges"].update({p["privilege"].lower(): p for p in service["privileges"]})
        entry["resources"].update({r["resource"]: r["arn"] for r in service["resources"]})
    return services


def known(action: str) -> bool:
    prefix, _, name = action.partition(":")
    return name.lower() in _definition().get(prefix, {}).get("privileges", {})


def resource_types(action: str) -> list[ResourceType]:
    """The resource types ``action`` names in the reference; required ones first. KeyError for an unknown action."""
    prefix, _, name = action.partition(":")
    service = _definition().get(prefix)
    if service is None or name.lower() not in service["privileges"]:
        raise KeyError(f"{action} is not an action of the Service Authorization Reference (parliament 1.6.4)")
    out = []
    for entry in service["privileges"][name.lower()]["resource_types"]:
        raw = entry["resource_type"]
        if not raw:
            continue  # the row of condition keys without a resource type
        type_name = raw.rstrip("*")
        out.append(ResourceType(type_name, raw.endswith("*"), service["resources"].get(type_name, "")))
    return sorted(out, key=lambda r: not r.required)


def arn_variables(arn_format: str) -> list[str]:
    return re.findall(r"\$\{([^}]+)\}", arn_format)
