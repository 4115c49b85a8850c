"""The settings of a platform Lambda handler: its environment variables, read once into a frozen dataclass.

Copied into every function's asset and imported there as the top-level module ``function_settings``
(stacks/components/function_shared/__init__.py), so it uses the standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self


@dataclass(frozen=True)
class EnvironmentSettings:
    """Base of a handler's ``Settings``: a frozen dataclass whose every field is read from the environment variable
    of its name in upper case (``datastore_id`` from ``DATASTORE_ID``); ``DEPLOYED_BY`` names the stack that sets
    them. The handler's ``ENV_*`` constants, which the stack writes, are those names (a test keeps them equal)."""

    DEPLOYED_BY: ClassVar[str] = ""

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name -> environment variable, in field order."""
        return {field.name: field.name.upper() for field in fields(cls)}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Every variable at once; a missing or empty one raises RuntimeError naming all of them."""
        env = os.environ if environ is None else environ
        variables = cls.variables()
        missing = [name for name in variables.values() if not env.get(name)]
        if missing:
            raise RuntimeError(
                f"environment variables {missing} are not set: deploy this function with the {cls.DEPLOYED_BY} stack"
            )
        return cls(**cls.parse({field: env[name] for field, name in variables.items()}))

    @classmethod
    def parse(cls, values: dict[str, str]) -> dict[str, Any]:
        """The fields' values from the variables' text; a handler with typed or checked fields overrides this."""
        return dict(values)
