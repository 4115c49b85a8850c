"""The CDK CLI, as users run it: `npx cdk ls` and `npx cdk synth` from the project root, offline."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.stacks.assembly import PROJECT_ROOT, Assembly


def run_cdk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npx", "--no-install", "cdk", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
        timeout=300,
    )


@pytest.mark.parametrize(
    "stage",
    [
        "dev",  # the embedded default
        "prod",  # -c stage=prod: the stage's overrides, the same stacks under the stage's names
    ],
)
def test_cdk_ls_lists_every_stack_under_its_stage_name(tmp_path: Path, assembly: Assembly, stage: str) -> None:
    result = run_cdk("ls", "-c", f"stage={stage}", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    # The CLI sees the same stacks as the in-process synth, each deployed as <project>-<stage>-<id>.
    expected = sorted(f"{stack_id} (monai-imaging-{stage}-{stack_id.lower()})" for stack_id in assembly.templates)
    assert sorted(result.stdout.splitlines()) == expected
    assert {"Data", "Network"} <= set(assembly.templates)


def test_cdk_synth_refuses_an_invalid_override_with_the_config_message(tmp_path: Path) -> None:
    result = run_cdk("synth", "-q", "-c", "platform.region=us-east-2", "--output", str(tmp_path))
    assert result.returncode != 0
    assert "where AWS HealthImaging is not available: use one of us-east-1" in result.stderr
