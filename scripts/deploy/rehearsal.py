"""`make deploy-rehearsal`: `make deploy` and `monai-platform doctor` against an offline rehearsal account.

    python -m scripts.deploy.rehearsal [--cdk-out cdk.out] [--stage dev]

The real orchestration (scripts/deploy/steps.py) and the real doctor run against testkit/aws_account.py: moto for
what it emulates, simulated CodePipeline executions and HealthImaging data stores behind validated botocore
clients, and FakeCdk playing cdk/git/make (the stacks and their dependencies are the synthesized assembly's). The
clock is fake: the image pipeline's 28 minutes pass at once. Three acts:

1. a bootstrapped, empty account: the first `make deploy`, interrupted by a (simulated) transient failure;
2. `make deploy` again: it resumes (no second image build, no second seed) and ends with a healthy doctor;
3. the same account damaged (trail stopped and narrowed, endpoint Failed, a rollback alarm deleted, the data
   store deleted, messages in a dead-letter queue): doctor says what is wrong and how to fix it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from platform_cli import doctor
from platform_cli.project import Deployment
from platform_cli.runtime import Runtime
from scripts.deploy.plan import DeployPlan, read_plan
from scripts.deploy.steps import Deployer, DeployError, DeployOptions
from stacks.config import STAGE_CONTEXT_KEY, PlatformConfig, build_config
from stacks.container_images.names import image_uri_parameter_prefix
from testkit.aws_account import FakeCdk, RehearsalAccount, rehearsal_account

# The transient failure of act 1: the first deploy of this stack fails once.
INTERRUPTED_AT = "Approval"


def banner(title: str) -> None:
    print(f"\n===== {title} " + "=" * max(0, 100 - len(title)), flush=True)


def deployer(account: RehearsalAccount, config: PlatformConfig, plan: DeployPlan, cdk: FakeCdk,
             workdir: Path) -> Deployer:
    runtime = Runtime(
        deployment=Deployment(project=config.project_name, stage=config.stage),
        session=account.session,
        client_overrides=account.overrides,
        sleep=account.clock.sleep,
        clock=account.clock.clock,
        stderr=sys.stdout,  # one stream, in order
    )
    options = DeployOptions(cdk_out=Path("cdk.out"), require_approval="never", demo_output=workdir / "demo-output",
                            workdir=workdir)
    return Deployer(runtime, config, plan, cdk, options)


def run_deploy(deploy: Deployer) -> int:
    try:
        return deploy.run()
    except DeployError as error:
        print(f"make deploy: {error}", flush=True)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy.rehearsal", description=__doc__.split("\n")[0])
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    context = json.loads(Path("cdk.json").read_text())["context"]
    config = build_config({**context, STAGE_CONTEXT_KEY: args.stage})
    plan = read_plan(args.cdk_out, image_parameter_prefix=image_uri_parameter_prefix(config.prefix))
    dependencies = {stack.stack_id: stack.dependencies for stack in plan.stacks}
    print(f"plan from {args.cdk_out}: foundation {plan.ids(plan.foundation)}, after the images {plan.ids(plan.rest)}")
    with tempfile.TemporaryDirectory(prefix="deploy-rehearsal-") as scratch, rehearsal_account() as account:
        cdk = FakeCdk(account, dependencies, print_line=lambda line: print(f"    | {line}", flush=True),
                      fail_stack_once={INTERRUPTED_AT})
        banner(f"act 1: make deploy STAGE={args.stage} on a bootstrapped, empty account")
        first = run_deploy(deployer(account, config, plan, cdk, Path(scratch)))
        banner(f"act 2: make deploy STAGE={args.stage} again (exit {first} before): it resumes")
        second = run_deploy(deployer(account, config, plan, cdk, Path(scratch)))
        executions = [e for p in account.pipelines.pipelines.values() for e in p["executions"]]
        print(f"image pipeline executions: {len(executions)} (the one CodePipeline starts on creation, which finds "
              f"no source, and one of this checkout); fake time: {account.clock.now / 60:.0f} min")
        banner("act 3: the account damaged, then monai-platform doctor")
        account.break_trail()
        account.break_endpoint("The primary container for production variant AllTraffic did not pass the ping "
                               "health check.")
        account.break_alarm()
        account.break_datastore()
        account.break_dead_letters()
        runtime = deployer(account, config, plan, cdk, Path(scratch)).runtime
        findings = doctor.examine(runtime)
        for line in doctor.render(findings):
            print(line, flush=True)
        broken = 1 if any(f.status == doctor.FAIL for f in findings) else 0
    print(f"\nexit codes: first deploy {first}, resumed deploy {second}, doctor on the damaged account {broken}")
    return 0 if (first, second, broken) == (1, 0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
