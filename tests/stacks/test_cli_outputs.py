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


def outputs_read_by_name(path: str) -> set[tuple[str, str]]:
    """("Stack", "Output") of every ``output("Stack", "Output")`` and ``OutputRef("Stack", "Output")`` in a module, and
    of the outputs doctor reads in loops (its tuples of output names)."""
    import ast

    from platform_cli.doctor import DATA_BUCKETS, IMAGING_TOPICS, SERVING_TOPICS
    from tests.stacks.assembly import PROJECT_ROOT

    looped = {("Data", k) for k in DATA_BUCKETS} | {("Imaging", k) for k in IMAGING_TOPICS} | {
        ("Serving", k) for k in SERVING_TOPICS}
    found = looped if path.endswith("doctor.py") else set()
    for node in ast.walk(ast.parse((PROJECT_ROOT / path).read_text())):
        if isinstance(node, ast.Call) and len(node.args) == 2:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("output", "OutputRef") and all(isinstance(a, ast.Constant) for a in node.args):
                found.add((node.args[0].value, node.args[1].value))  # type: ignore[attr-defined]
    return found


def test_every_output_doctor_and_make_deploy_read_exists(assembly: Assembly) -> None:
    read = outputs_read_by_name("platform_cli/doctor.py") | outputs_read_by_name("scripts/deploy/steps.py")
    assert {("Audit", "TrailArn"), ("Serving", "ModelDataUrl"), ("Images", "PipelineName")} <= read  # the scan works
    missing = sorted(f"{stack}.{key}" for stack, key in read
                     if key not in assembly.templates[stack].get("Outputs", {}))
    assert missing == []
