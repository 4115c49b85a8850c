"""Entry point of ``monai-platform`` / ``python -m platform_cli``: parse, run one command, map errors to exit codes.

Exit codes: 0 done, 1 the platform failed or timed out (or AWS refused), 2 bad arguments or input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from platform_cli import archives, backfill, dicom_import, doctor, models, segment, training
from platform_cli.errors import EXIT_FAILURE, EXIT_USAGE, CliError
from platform_cli.project import DEFAULT_STAGE, Deployment, resolve_deployment
from platform_cli.runtime import Runtime

PROG = "monai-platform"
RuntimeFactory = Callable[[Deployment, argparse.Namespace], Runtime]


def common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """Deployment options; accepted before the command and after it (``models list --stage prod``)."""
    parser = argparse.ArgumentParser(add_help=False)

    def default(value: object) -> object:
        # On the sub-commands a default would overwrite what was given before the command.
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("deployment")
    group.add_argument("--stage", default=default(DEFAULT_STAGE), help="deployment stage (default: dev)")
    group.add_argument("--project", default=default(None),
                       help="project name (default: cdk.json's platform.defaults.projectName, inside the repo)")
    group.add_argument("--region", default=default(None), help="AWS region (default: the AWS configuration's)")
    group.add_argument("--profile", default=default(None), help="AWS named profile")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common_options(suppress=False)],
        description="Use a deployed MONAI Imaging Platform: import DICOM, segment image sets, train, "
        "approve models, manage multi-model archives, check its health (doctor). Names come from the stacks' "
        "CloudFormation outputs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parents = [common_options(suppress=True)]
    for module in (dicom_import, segment, training, models, archives, backfill, doctor):
        module.add_parser(commands, parents)
    return parser


def default_runtime(deployment: Deployment, args: argparse.Namespace) -> Runtime:
    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    return Runtime(deployment=deployment, session=session)


def main(
    argv: Sequence[str] | None = None,
    *,
    runtime_factory: RuntimeFactory = default_runtime,
    cwd: Path | None = None,
) -> int:
    args = build_parser().parse_args(argv)  # exits 2 with argparse's message on bad usage
    stderr = sys.stderr
    try:
        deployment = resolve_deployment(project=args.project, stage=args.stage, cwd=cwd or Path.cwd())
        runtime = runtime_factory(deployment, args)
        stderr = runtime.stderr
        return int(args.run(args, runtime))
    except CliError as error:
        print(f"{PROG}: error: {error.message}", file=stderr)
        return error.exit_code
    except NoCredentialsError:
        print(f"{PROG}: error: no AWS credentials: configure them (aws configure, AWS_PROFILE or --profile)",
              file=stderr)
        return EXIT_FAILURE
    except NoRegionError:
        print(f"{PROG}: error: no AWS region: pass --region or set AWS_REGION", file=stderr)
        return EXIT_USAGE
    except ClientError as error:
        detail = error.response.get("Error", {})
        print(
            f"{PROG}: error: AWS refused {error.operation_name}: {detail.get('Code')}: {detail.get('Message')}",
            file=stderr,
        )
        return EXIT_FAILURE
    except BotoCoreError as error:
        print(f"{PROG}: error: {error}", file=stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (uploads or requests already sent keep running on AWS)", file=stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
