"""``monai-platform train``: start the training state machine with hyperparameters.

Execution input, as stacks/training/stack.py reads it: ``{"hyperparameters": {"name": "value", ...}}`` with string
values (what SageMaker's CreateTrainingJob takes), plus ``"dataPrefix"`` only when given, so the state machine's
default data prefix applies otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from platform_cli import outputs
from platform_cli.errors import UsageError
from platform_cli.runtime import Runtime

# CreateTrainingJob limits (botocore service model): at most 100 hyperparameters, keys <= 256, values <= 2500.
MAX_HYPERPARAMETERS = 100
MAX_KEY = 256
MAX_VALUE = 2500
# StartExecution name: 1-80 characters; this alphabet is the one that also works in CloudWatch log names.
_EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train",
        parents=parents,
        help="start a training run (Step Functions state machine of the Training stack)",
        description="Starts the training state machine; prints the execution ARN.",
    )
    parser.add_argument(
        "-p", "--hyperparameter", action="append", default=[], metavar="NAME=VALUE",
        help="a hyperparameter for the training job (repeat the option for more)",
    )
    parser.add_argument("--hyperparameters-file", type=Path, metavar="FILE.json",
                        help="a JSON object of hyperparameters; -p options override its entries")
    parser.add_argument("--data-prefix", help="training data under this prefix of the training-data bucket "
                        "(e.g. spleen/; default: the state machine's)")
    parser.add_argument("--name", help="execution name, 1-80 of A-Z a-z 0-9 _ - (default: generated)")
    parser.set_defaults(run=run)


def parse_hyperparameters(pairs: list[str], file: Path | None) -> dict[str, str]:
    merged: dict[str, str] = {}
    if file is not None:
        try:
            document = json.loads(file.read_text())
        except (OSError, ValueError) as error:
            raise UsageError(f"--hyperparameters-file {file}: not a readable JSON file ({error})") from error
        if not isinstance(document, dict):
            raise UsageError(f"--hyperparameters-file {file}: must hold a JSON object of name: value")
        # SageMaker hyperparameters are strings; JSON numbers and booleans keep their JSON spelling.
        merged.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in document.items()})
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-p {pair!r}: write NAME=VALUE, e.g. -p max_epochs=50")
        merged[name.strip()] = value
    if len(merged) > MAX_HYPERPARAMETERS:
        raise UsageError(f"{len(merged)} hyperparameters: SageMaker accepts at most {MAX_HYPERPARAMETERS}")
    for name, value in merged.items():
        if len(name) > MAX_KEY or len(value) > MAX_VALUE:
            raise UsageError(
                f"hyperparameter {name[:40]!r}: names are at most {MAX_KEY} and values {MAX_VALUE} characters"
            )
    return merged


def check_data_prefix(prefix: str) -> str:
    """A key prefix inside the training-data bucket, as the state machine appends it to ``s3://<bucket>/``."""
    if not prefix or prefix.startswith(("/", "s3://")) or not prefix.endswith("/"):
        raise UsageError(f"--data-prefix {prefix!r} must be a folder of the training-data bucket like 'spleen/'")
    return prefix


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    hyperparameters = parse_hyperparameters(args.hyperparameter, args.hyperparameters_file)
    if args.name is not None and not _EXECUTION_NAME.match(args.name):
        raise UsageError(f"--name {args.name!r} must be 1-80 of A-Z a-z 0-9 _ -")
    document: dict[str, object] = {"hyperparameters": hyperparameters}
    if args.data_prefix is not None:
        document["dataPrefix"] = check_data_prefix(args.data_prefix)
    state_machine = runtime.output(outputs.TRAINING_STATE_MACHINE)
    response = runtime.client("stepfunctions").start_execution(
        stateMachineArn=state_machine,
        input=json.dumps(document),
        **({"name": args.name} if args.name else {}),
    )
    runtime.note(f"started training with {len(hyperparameters)} hyperparameters")
    runtime.emit(response["executionArn"])
    return 0
