"""The CDK CLI, as users run it: `npx cdk ls` lists the stage's stacks from cdk.json, offline."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.stacks.assembly import PROJECT_ROOT


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("dev", ["Data (monai-imaging-dev-data)", "Network (monai-imaging-dev-network)",
          "Imaging (monai-imaging-dev-imaging)",
          "Images (monai-imaging-dev-images)", "Serving (monai-imaging-dev-serving)"]),  # embedded default
        ("prod", ["Data (monai-imaging-prod-data)", "Network (monai-imaging-prod-network)",
          "Imaging (monai-imaging-prod-imaging)",
          "Images (monai-imaging-prod-images)", "Serving (monai-imaging-prod-serving)"]),  # -c stage=prod
    ],
)
def test_cdk_ls_lists_the_stacks(tmp_path: object, stage: str, expected: list[str]) -> None:
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "ls", "-c", f"stage={stage}", "--output", str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == expected


def test_cdk_synth_refuses_an_invalid_override_with_the_config_message(tmp_path: object) -> None:
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "-q", "-c", "platform.region=us-east-2", "--output", str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
        timeout=300,
    )
    assert result.returncode != 0
    assert "where AWS HealthImaging is not available: use one of us-east-1" in result.stderr
