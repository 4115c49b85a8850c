"""The user CLI reads stack outputs by name: every one it needs must exist in the synthesized templates."""

from __future__ import annotations

from platform_cli.outputs import ALL_OUTPUTS
from tests.stacks.assembly import Assembly


def test_every_output_the_cli_reads_exists(assembly: Assembly) -> None:
    # Outputs with a hint exist only under a configuration switch (checked with that switch below).
    missing = [
        f"{ref.stack_id}.{ref.key}"
        for ref in ALL_OUTPUTS
        if not ref.hint and ref.key not in assembly.templates[ref.stack_id].get("Outputs", {})
    ]
    assert missing == []


def test_switched_outputs_are_absent_by_default(assembly: Assembly) -> None:
    # Must not: with the multi-model endpoint off, the CLI's archive commands have nothing to read.
    switched = [ref for ref in ALL_OUTPUTS if ref.hint]
    assert switched
    for ref in switched:
        assert ref.key not in assembly.templates[ref.stack_id].get("Outputs", {})
