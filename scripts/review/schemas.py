"""Which property changes force CloudFormation to replace a resource: the registry schemas cfn-lint ships.

A resource schema lists ``createOnlyProperties`` (JSON pointers such as ``/properties/BucketName``); changing
one of them makes CloudFormation create a new physical resource and delete (or orphan) the old one.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import cfnlint

_SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
# Templates of this project are synthesized for this region's schema set; createOnly lists match across regions.
SCHEMA_REGION = "us-east-1"


@cache
def _provider_index() -> dict[str, str]:
    return dict(json.loads((_SCHEMAS / "providers" / f"{SCHEMA_REGION.replace('_', '-')}.json").read_text()))


@cache
def create_only_paths(resource_type: str) -> tuple[tuple[str, ...], ...]:
    """Property paths (segments after ``/properties``) whose change replaces a resource of this type.

    An unknown type (a custom resource, a type newer than cfn-lint) returns no paths: the report then says
    the replacement is unknown rather than guessing.
    """
    schema_id = _provider_index().get(resource_type)
    if schema_id is None:
        return ()
    schema = json.loads((_SCHEMAS / "resources" / f"{schema_id}.json").read_text())
    return tuple(
        tuple(pointer.split("/")[2:])
        for pointer in schema.get("createOnlyProperties", [])
        if pointer.startswith("/properties/")
    )


def is_known_type(resource_type: str) -> bool:
    return resource_type in _provider_index()


def _matches(changed: tuple[str, ...], create_only: tuple[str, ...]) -> bool:
    # Array indices in the changed path meet "*" in the schema pointer; either path may be the longer one
    # (a whole EncryptionConfiguration replaced, or one field under a create-only object).
    changed_keys = tuple(part for part in changed if not part.isdigit())
    schema_keys = tuple(part for part in create_only if part != "*")
    shorter = min(len(changed_keys), len(schema_keys))
    return changed_keys[:shorter] == schema_keys[:shorter]


def forces_replacement(resource_type: str, changed_path: tuple[str, ...]) -> bool:
    """True when changing the property at ``changed_path`` (``("BucketName",)``) replaces the resource."""
    return any(_matches(changed_path, create_only) for create_only in create_only_paths(resource_type))
