"""The one reader of the configuration, and the field kinds each section declares beside its fields.

A section is a frozen dataclass (stacks/config/sections.py) whose fields carry ``field(metadata=setting(key,
kind))``: the camelCase context key under the section and the kind that judges the raw value. :func:`read_section`
reads the fields in declaration order, then runs the section's cross-field rules (``Rules.check``). Every
message names the full context key, the value and what to do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

CONTEXT_ROOT = "platform"

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)

_SETTING = "setting"


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the context key and the fix."""


class Section:
    """One object of the configuration document: ``path`` is "network", "images.source", or "" at the top.

    ``defined_stages``: the stages cdk.json defines (``platform.stages``), for the keys that name stages.
    """

    def __init__(self, values: Any, path: str, *, defined_stages: tuple[str, ...] = ()) -> None:
        self.path = path
        self.defined_stages = defined_stages
        if not isinstance(values, Mapping):
            raise ConfigError(f"context key '{self.key('')}' must be an object of settings")
        self.values: Mapping[str, Any] = values

    def key(self, name: str) -> str:
        """The full context key of ``name``, as a user writes it after ``-c``."""
        return ".".join(part for part in (CONTEXT_ROOT, self.path, name) if part)

    def child(self, name: str) -> Section:
        path = f"{self.path}.{name}" if self.path else name
        return Section(self.values.get(name), path, defined_stages=self.defined_stages)

    def raw(self, name: str) -> Any:
        if name not in self.values:
            raise ConfigError(f"context key '{self.key(name)}' is missing: add it to cdk.json")
        return self.values[name]

    def invalid(self, name: str, expected: str, value: Any, fix: str = "") -> ConfigError:
        return ConfigError(f"context key '{self.key(name)}' must be {expected}, got {value!r}{fix}")

    def require_at_most(self, low: tuple[str, int], high: tuple[str, int], fix: str) -> None:
        """A cross-field rule: the value of key ``low[0]`` must not exceed that of ``high[0]``."""
        (low_name, low_value), (high_name, high_value) = low, high
        if low_value > high_value:
            raise ConfigError(
                f"context key '{self.key(low_name)}' ({low_value}) must be <= '{self.key(high_name)}' "
                f"({high_value}): {fix}"
            )


class Kind(Protocol):
    """Judges the raw value of one key and returns the field's value, or raises :class:`ConfigError`."""

    def read(self, section: Section, name: str) -> Any: ...


@dataclass(frozen=True)
class Integer:
    minimum: int
    maximum: int | None = None

    def read(self, section: Section, name: str) -> int:
        value = section.raw(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"context key '{section.key(name)}' must be an integer, got {value!r}")
        if value < self.minimum:
            raise ConfigError(f"context key '{section.key(name)}' must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"context key '{section.key(name)}' must be <= {self.maximum}, got {value}")
        return value


@dataclass(frozen=True)
class Flag:
    def read(self, section: Section, name: str) -> bool:
        value = section.raw(name)
        if not isinstance(value, bool):
            raise ConfigError(f"context key '{section.key(name)}' must be true or false, got {value!r}")
        return value


@dataclass(frozen=True)
class Text:
    """A non-empty string; with ``valid``, also one it accepts ("must be ``expected``" otherwise)."""

    expected: str = ""
    valid: Callable[[str], bool] | None = None

    def read(self, section: Section, name: str) -> str:
        value = section.raw(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"context key '{section.key(name)}' must be a non-empty string, got {value!r}")
        if self.valid is not None and not self.valid(value):
            raise section.invalid(name, self.expected, value)
        return value


def one_of(choices: tuple[str, ...]) -> Text:
    return Text(expected=f"one of {list(choices)}", valid=lambda value: value in choices)


@dataclass(frozen=True)
class Value:
    """Any JSON value that ``valid`` accepts, types included ("must be ``expected``, got ...``fix``" otherwise).

    ``prepare`` turns the raw value into what is judged (``str`` for a version typed as a number); ``convert``
    turns the accepted value into the field's (``""`` into None, a list into a tuple).
    """

    expected: str
    valid: Callable[[Any], bool]
    fix: str = ""
    prepare: Callable[[Any], Any] | None = None
    convert: Callable[[Any], Any] | None = None

    def read(self, section: Section, name: str) -> Any:
        value = section.raw(name)
        if self.prepare is not None:
            value = self.prepare(value)
        if not self.valid(value):
            raise section.invalid(name, self.expected, value, self.fix)
        return value if self.convert is None else self.convert(value)


def empty_is_none(value: str) -> str | None:
    """cdk.json writes "" for "not set": jsii drops null context values, and a missing key cannot be set with -c."""
    return value or None


@dataclass(frozen=True)
class RetentionDays:
    def read(self, section: Section, name: str) -> int:
        value = Integer(minimum=1).read(section, name)
        if value not in LOG_RETENTION_DAYS:
            raise section.invalid(name, f"a CloudWatch Logs retention period {list(LOG_RETENTION_DAYS)}", value)
        return value


S = TypeVar("S", bound="Rules")


@dataclass(frozen=True)
class Nested:
    """A section inside a section (``images.source``, or ``network`` at the top level)."""

    section_type: type[Rules]

    def read(self, section: Section, name: str) -> Any:
        return read_section(self.section_type, section.child(name))


@dataclass(frozen=True)
class Setting:
    key: str
    kind: Kind
    # Read only when this holds for the fields read before it; None otherwise (a field of another source kind).
    when: Callable[[Mapping[str, Any]], bool] | None = None


def setting(key: str, kind: Kind, *, when: Callable[[Mapping[str, Any]], bool] | None = None) -> dict[str, Setting]:
    """The metadata of a section field: ``field(metadata=setting("maxAzs", Integer(minimum=2, maximum=6)))``."""
    return {_SETTING: Setting(key, kind, when)}


@dataclass(frozen=True)
class Rules:
    """Base of every section type: ``check`` holds its cross-field rules and may normalize the value it returns."""

    def check(self, section: Section) -> Self:
        return self


def read_section(section_type: type[S], section: Section) -> S:
    """Read every field of ``section_type`` from ``section`` in declaration order, then its cross-field rules."""
    values: dict[str, Any] = {}
    for spec_field in dataclasses.fields(section_type):
        spec = spec_field.metadata[_SETTING]
        if spec.when is not None and not spec.when(values):
            values[spec_field.name] = None
        else:
            values[spec_field.name] = spec.kind.read(section, spec.key)
    return section_type(**values).check(section)
