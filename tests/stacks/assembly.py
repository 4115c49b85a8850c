"""Synthesize the app the way `cdk synth` does (cdk.json's context loaded) and read the result."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from stacks.compliance import add_compliance_checks
from stacks.config import build_config
from stacks.platform import build_platform

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"])


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    templates: dict[str, dict[str, Any]]

    def resources(self, stack: str, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.templates[stack]["Resources"].items() if v["Type"] == type_}

    def all_resources(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                yield stack, logical_id, resource

    def metadata_entries(self, entry_type: str) -> Iterator[tuple[str, Any]]:
        """(construct path, data) of every assembly metadata entry of ``entry_type``."""
        for metadata_file in self.outdir.glob("*.metadata.json"):
            for path, entries in json.loads(metadata_file.read_text()).items():
                for entry in entries:
                    if entry["type"] == entry_type:
                        yield path, entry["data"]


def synthesize(outdir: Path, overrides: Mapping[str, Any] | None = None) -> Assembly:
    """Build and synthesize the app with cdk.json's context plus ``overrides`` (like ``-c key=value``)."""
    context = {**cdk_json_context(), **(overrides or {})}
    app = cdk.App(context=context, outdir=str(outdir))
    build_platform(app, build_config(app.node.get_all_context()))
    add_compliance_checks(app)
    app.synth()
    templates = {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in outdir.glob("*.template.json")
    }
    return Assembly(outdir=outdir, templates=templates)


_VARIANTS: dict[str, tuple[dict[str, Any], Assembly]] = {}


def synthesize_variant(name: str, overrides: Mapping[str, Any]) -> Assembly:
    """``overrides`` synthesized once per process under ``name``, whichever test module asks first: the slow
    synths are shared between modules (pytest's session fixtures would tie them to one conftest)."""
    if name not in _VARIANTS:
        outdir = Path(tempfile.mkdtemp(prefix=f"cdk-out-{name}-"))
        _VARIANTS[name] = (dict(overrides), synthesize(outdir, overrides))
    synthesized_with, assembly = _VARIANTS[name]
    assert synthesized_with == dict(overrides), f"variant {name!r} was synthesized with other overrides"
    return assembly
