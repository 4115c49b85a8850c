"""`make synth`'s summary: one line per stack with resources and nag counts, and the verdict."""

from __future__ import annotations

import pytest

from scripts.assembly import owning_stack
from scripts.synth_summary import main
from tests.stacks.assembly import Assembly


def test_summary_lists_every_stack_and_the_verdict(assembly: Assembly, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(assembly.outdir) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert set(rows) == set(assembly.templates)
    for stack, (resources, findings, _acknowledged) in rows.items():
        assert int(resources) == len(assembly.templates[stack]["Resources"])
        assert findings == "0"
    assert lines[-1].startswith("cdk-nag (AwsSolutions + HIPAA.Security): 0 unacknowledged findings;")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Data/Keys/DataKey/Resource", "Data"),  # a top-level stack
        ("Pipeline/Dev/Data/Keys/DataKey/Resource", "Pipeline/Dev/Data"),  # a stage's stack inside the pipeline
        ("Pipeline/Pipeline/Role/Resource", "Pipeline"),  # the pipeline stack itself, not its stages
    ],
)
def test_findings_are_counted_against_the_innermost_stack(path: str, expected: str) -> None:
    assert owning_stack(path, ["Data", "Pipeline", "Pipeline/Dev/Data"]) == expected
