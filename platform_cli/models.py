"""``monai-platform models list|approve|reject``: the Model Registry group the training state machine fills.

Approving a package is what deploys it (the approval-deploy rule of the approval stack reacts to the change).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from platform_cli import outputs
from platform_cli.errors import UsageError
from platform_cli.runtime import Runtime

STATUSES = ("Approved", "PendingManualApproval", "Rejected")


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("models", help="list, approve or reject trained model packages")
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="{list,approve,reject}")
    listing = commands.add_parser("list", parents=parents, help="model packages of the group, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only packages with this approval status")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=run_list)
    for name, status in (("approve", "Approved"), ("reject", "Rejected")):
        command = commands.add_parser(name, parents=parents, help=f"set a package's approval status to {status}")
        command.add_argument("package", metavar="VERSION|ARN", help="package version number or ARN")
        command.add_argument("--note", help="approval description recorded with the change")
        command.set_defaults(run=run_update, status=status)


def list_packages(sagemaker: Any, group: str, status: str | None = None) -> list[dict[str, Any]]:
    extra = {"ModelApprovalStatus": status} if status else {}
    packages: list[dict[str, Any]] = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, ModelPackageType="Versioned", SortBy="CreationTime", SortOrder="Descending",
        **extra,
    ):
        packages.extend(page["ModelPackageSummaryList"])
    return packages


def run_list(args: argparse.Namespace, runtime: Runtime) -> int:
    group = runtime.output(outputs.MODEL_PACKAGE_GROUP)
    packages = list_packages(runtime.client("sagemaker"), group, args.status)
    if args.json:
        runtime.emit(json.dumps(packages, indent=2, default=str))
        return 0
    if not packages:
        runtime.note(f"no model packages in group {group}" + (f" with status {args.status}" if args.status else ""))
        return 0
    runtime.emit(f"{'VERSION':>7}  {'APPROVAL':<21}  {'CREATED':<25}  ARN")
    for package in packages:
        runtime.emit(
            f"{package.get('ModelPackageVersion', '-'):>7}  {package['ModelApprovalStatus']:<21}  "
            f"{package['CreationTime']!s:<25}  {package['ModelPackageArn']}"
        )
    return 0


def resolve_package(sagemaker: Any, group: str, package: str) -> str:
    """The ARN of ``package`` (a version number or an ARN) in ``group``."""
    if package.isdigit():
        for summary in list_packages(sagemaker, group):
            if summary.get("ModelPackageVersion") == int(package):
                return str(summary["ModelPackageArn"])
        raise UsageError(f"model package group {group} has no version {package}: see `monai-platform models list`")
    if f":model-package/{group.lower()}/" not in package.lower():
        raise UsageError(f"{package!r} is neither a version number nor a package ARN of group {group}")
    return package


def run_update(args: argparse.Namespace, runtime: Runtime) -> int:
    group = runtime.output(outputs.MODEL_PACKAGE_GROUP)
    sagemaker = runtime.client("sagemaker")
    arn = resolve_package(sagemaker, group, args.package)
    request: dict[str, Any] = {"ModelPackageArn": arn, "ModelApprovalStatus": args.status}
    if args.note:
        request["ApprovalDescription"] = args.note
    sagemaker.update_model_package(**request)
    runtime.note(f"{arn} is now {args.status}")
    runtime.emit(arn)
    return 0
