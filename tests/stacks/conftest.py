"""The whole platform, synthesized once per configuration when first asked for: what the platform-grain tests read
(compliance, wiring, idle cost, CLI outputs, synth summary, the pipeline's stages).

A stack's own test module builds that stack from its props alone (tests/stacks/scaffold.py) and defines fixtures
of the same names, which take the place of these in that module.
"""

from __future__ import annotations

import pytest

from tests.stacks.assembly import (
    AUDIT_OVERRIDES,
    CODESTAR_OVERRIDES,
    INFERENCE_OVERRIDES,
    MULTI_MODEL_OVERRIDES,
    VARIANT_OVERRIDES,
    Assembly,
    synthesize,
    synthesize_pipeline,
)


@pytest.fixture(scope="session")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """The default configuration, synthesized once for the session."""
    return synthesize(tmp_path_factory.mktemp("cdk-out-default"))


@pytest.fixture(scope="session")
def variant_assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """The same app with NAT gateways on and other lifecycle periods (see VARIANT_OVERRIDES)."""
    return synthesize(tmp_path_factory.mktemp("cdk-out-variant"), VARIANT_OVERRIDES)


@pytest.fixture(scope="session")
def codestar_assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """A CodeStar image source, NAT on and asyncInstanceType ml.m5.xlarge (see CODESTAR_OVERRIDES)."""
    return synthesize(tmp_path_factory.mktemp("cdk-out-codestar"), CODESTAR_OVERRIDES)


@pytest.fixture(scope="session")
def mme_assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """serving.multiModelEnabled: the Triton multi-model endpoint and its alarms (see MULTI_MODEL_OVERRIDES)."""
    return synthesize(tmp_path_factory.mktemp("cdk-out-mme"), MULTI_MODEL_OVERRIDES)


@pytest.fixture(scope="session")
def import_assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """serving.importSegBack on, monitoring thresholds changed and an e-mail subscriber (see INFERENCE_OVERRIDES)."""
    return synthesize(tmp_path_factory.mktemp("cdk-out-import"), INFERENCE_OVERRIDES)


@pytest.fixture(scope="session")
def audit_assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """An existing organization trail records the platform's data access (see AUDIT_OVERRIDES): no trail of its own."""
    return synthesize(tmp_path_factory.mktemp("cdk-out-audit"), AUDIT_OVERRIDES)


@pytest.fixture(scope="session")
def pipeline_assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """The release pipeline in the cross-account layout (tests/stacks/assembly.py cross_account_context)."""
    return synthesize_pipeline(tmp_path_factory.mktemp("cdk-out-pipeline"))
