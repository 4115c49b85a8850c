"""Server settings of issue 19: the thread rule (workers x intra-op threads <= vCPUs by default, overrides win)
and the warm-up switch, read from the environment."""

from __future__ import annotations

import pytest

from model_code.core.settings import ServerSettings
from model_code.core.threads import ThreadPlan, machine_vcpus, plan_threads, server_plan


@pytest.mark.parametrize(
    ("vcpus", "gpus", "workers", "threads", "expected"),
    [
        (1, 0, None, None, ThreadPlan(1, 1)),  # one core: one worker, one thread
        (2, 0, None, None, ThreadPlan(2, 1)),  # ml.m5.large, this machine: a worker per core, one thread each
        (4, 0, None, None, ThreadPlan(2, 2)),  # ml.m5.xlarge: two threads from 4 vCPUs up
        (96, 0, None, None, ThreadPlan(48, 2)),  # ml.m5.24xlarge
        (4, 1, None, None, ThreadPlan(1, 4)),  # ml.g4dn.xlarge: a worker per GPU, the vCPUs shared
        (48, 4, None, None, ThreadPlan(4, 12)),  # ml.g4dn.12xlarge
        (4, 0, 4, None, ThreadPlan(4, 1)),  # workers set: threads derived from them
        (4, 0, 3, None, ThreadPlan(3, 1)),  # ... rounding down, never over the vCPUs
        (4, 0, 8, None, ThreadPlan(8, 1)),  # more workers than vCPUs: one thread each, the caller's choice
        (8, 0, None, 4, ThreadPlan(2, 4)),  # threads set: workers derived
        (2, 0, 3, 3, ThreadPlan(3, 3)),  # both set: taken as they are
    ],
)
def test_plan(vcpus: int, gpus: int, workers: int | None, threads: int | None, expected: ThreadPlan) -> None:
    plan = plan_threads(vcpus, gpus, workers=workers, threads=threads)
    assert plan == expected
    if workers is None or threads is None:
        assert plan.threads * plan.workers <= max(vcpus, plan.workers)


@pytest.mark.parametrize(("vcpus", "gpus"), [(0, 0), (4, -1)])
def test_impossible_machine_is_refused(vcpus: int, gpus: int) -> None:
    with pytest.raises(ValueError, match="vcpus must be >= 1 and gpus >= 0"):
        plan_threads(vcpus, gpus)


def test_settings_read_the_toolkit_workers_and_the_threads() -> None:
    settings = ServerSettings.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "3", "SERVING_INTRA_OP_THREADS": "2"})
    assert (settings.workers, settings.intra_op_threads) == (3, 2)
    assert ServerSettings.from_env({}).intra_op_threads is None
    with pytest.raises(ValueError, match=r"SERVING_INTRA_OP_THREADS must be an integer >= 1 \(threads\), got '0'"):
        ServerSettings.from_env({"SERVING_INTRA_OP_THREADS": "0"})


@pytest.mark.parametrize(
    ("env", "workers", "threads"),
    [
        # (environment, workers the server knows itself, threads; None: every CPU of this machine)
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SERVING_DEVICE": "cpu"}, None, None),
        ({"SERVING_DEVICE": "cpu"}, 1, None),  # Triton's instance count, given by the server
        ({"SERVING_INTRA_OP_THREADS": "1", "SERVING_DEVICE": "cpu"}, None, 1),
    ],
)
def test_server_plan_on_this_machine(env: dict[str, str], workers: int | None, threads: int | None) -> None:
    plan = server_plan(ServerSettings.from_env(env), gpus=1, workers=workers)  # SERVING_DEVICE=cpu: no GPU counted
    assert plan.threads == (machine_vcpus() if threads is None else threads)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, True),  # default: every server warms up before it reports ready
        ("0", False),
        ("false", False),
        ("1", True),
    ],
)
def test_warmup_setting(value: str | None, expected: bool) -> None:
    env = {} if value is None else {"SERVING_WARMUP": value}
    assert ServerSettings.from_env(env).warmup is expected


def test_warmup_setting_refuses_other_values() -> None:
    with pytest.raises(ValueError, match=r"SERVING_WARMUP must be 1 or 0 \(true or false\), got 'yes'"):
        ServerSettings.from_env({"SERVING_WARMUP": "yes"})
