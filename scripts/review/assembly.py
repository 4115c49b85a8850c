"""One side of the review: a synthesized assembly's templates and cdk-nag counts, or why synth failed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scripts.assembly import Template, nag_findings, stack_templates


@dataclass
class SynthResult:
    """One side of the review: its templates, nag counts, and whether synth succeeded."""

    templates: dict[str, Template] = field(default_factory=dict)
    # (stack, rule) -> findings acknowledged with a reason / findings that failed synth.
    acknowledged: Counter[tuple[str, str]] = field(default_factory=Counter)
    violations: Counter[tuple[str, str]] = field(default_factory=Counter)
    error: str | None = None


def read_assembly(outdir: Path, *, error: str | None = None) -> SynthResult:
    # A synth that failed before writing the assembly (an app error) leaves no manifest: that side is empty.
    if not (outdir / "manifest.json").exists():
        return SynthResult(error=error)
    templates = stack_templates(outdir)
    nag = nag_findings(outdir, list(templates))
    return SynthResult(templates=templates, acknowledged=nag.acknowledged, violations=nag.violations, error=error)
