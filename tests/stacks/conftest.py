from __future__ import annotations

import pytest

from tests.stacks.assembly import Assembly, synthesize


@pytest.fixture(scope="session")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """The default configuration, synthesized once for the session."""
    return synthesize(tmp_path_factory.mktemp("cdk-out-default"))


# Non-default values of the switches users flip most, synthesized together to keep the suite fast.
VARIANT_OVERRIDES = {
    "platform.network.natGateways": "2",
    "platform.data.noncurrentVersionExpirationDays": "400",
    "platform.data.inferenceOutputExpirationDays": "14",
}


@pytest.fixture(scope="session")
def variant_assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """The same app with NAT gateways on and other lifecycle periods (see VARIANT_OVERRIDES)."""
    return synthesize(tmp_path_factory.mktemp("cdk-out-variant"), VARIANT_OVERRIDES)
