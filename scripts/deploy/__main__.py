"""python -m scripts.deploy --stage dev [--require-approval never] (what `make deploy STAGE=dev` runs after synth).

The stacks come from the assembly `make synth` wrote (cdk.out); the configuration from cdk.json for the stage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from platform_cli.errors import CliError
from platform_cli.project import Deployment
from platform_cli.runtime import Runtime
from scripts.deploy.plan import read_plan
from scripts.deploy.steps import Deployer, DeployError, DeployOptions
from stacks.config import STAGE_CONTEXT_KEY, build_config
from stacks.container_images.names import image_uri_parameter_prefix

PROG = "make deploy"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy", description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="the synthesized assembly")
    parser.add_argument("--require-approval", default="broadening", choices=("never", "any-change", "broadening"),
                        help="cdk deploy's question before security changes (default: broadening)")
    parser.add_argument("--demo-output", type=Path, default=DeployOptions().demo_output,
                        help="make demo's output folder: its model is seeded when none is approved (default: "
                        "demo-output; trained when missing)")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--region", default=None, help="default: the stage's platform.region")
    return parser.parse_args(argv)


def run_command(command: Sequence[str]) -> int:
    return subprocess.run(list(command), check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    context = json.loads(Path("cdk.json").read_text())["context"]
    config = build_config({**context, STAGE_CONTEXT_KEY: args.stage})
    plan = read_plan(args.cdk_out, image_parameter_prefix=image_uri_parameter_prefix(config.prefix))
    session = boto3.session.Session(profile_name=args.profile, region_name=args.region or config.region)
    runtime = Runtime(deployment=Deployment(project=config.project_name, stage=config.stage), session=session)
    options = DeployOptions(cdk_out=args.cdk_out, require_approval=args.require_approval, demo_output=args.demo_output)
    try:
        return Deployer(runtime, config, plan, run_command, options).run()
    except (DeployError, CliError) as error:
        print(f"{PROG}: {getattr(error, 'message', error)}", file=sys.stderr)
    except NoCredentialsError:
        print(f"{PROG}: no AWS credentials: set AWS_PROFILE or run aws configure", file=sys.stderr)
    except ClientError as error:
        detail = error.response.get("Error", {})
        print(f"{PROG}: AWS refused {error.operation_name}: {detail.get('Code')}: {detail.get('Message')}",
              file=sys.stderr)
    except BotoCoreError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
