"""Hold every acknowledgment reason that names a control to the synthesized templates.

A nag acknowledgment or a checkov skip may say why a finding does not apply because something else compensates
for it ("CloudTrail data events cover access to it", "versioning plus RETAIN protect these objects"). Such a reason
is a claim about the templates, and a claim nobody checks drifts into a false one. The rule: a reason that names a
control the templates can contain must be true of the very resources it acknowledges, in every configuration
synthesized. ``CLAIMS`` maps the words that name a control to the check; a reason naming a control that AWS
provides outside the templates (hardware encryption of instance storage) is not a claim about them.

- CloudTrail: a trail of the same assembly records reading and deleting the objects of every bucket the
  acknowledgment covers (platform_cli/trail_selectors.py, the evaluation doctor runs), or the reason names the
  configured organization trail, whose selectors `monai-platform doctor` checks in the account;
- versioning: every bucket it covers has versioning enabled;
- RETAIN (the CDK removal policy, in capitals): every bucket it covers is retained on delete and on replacement;
- isolated (subnets, VPC) or NAT-less: the assembly has no NAT gateway, so the workload subnets have no way out but
  the VPC endpoints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platform_cli.trail_selectors import object_events, unrecorded
from tests.stacks.contracts.resolve import ResolvedAssembly

TRAIL_ARN = re.compile(r"arn:aws[a-z-]*:cloudtrail:[a-z0-9-]+:\d{12}:trail/[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Acknowledged:
    """One reason in a synthesized assembly and the resources it is about."""

    stack: str  # artifact ID
    path: str  # construct path of the acknowledged scope ("/Data/AccessLogs")
    rule: str
    reason: str
    resources: tuple[str, ...]  # logical IDs under ``path`` in ``stack``'s template


@dataclass
class Assembly:
    """The stacks of one cloud assembly, resolvable (nested stage assemblies are read on their own)."""

    resolved: ResolvedAssembly
    organization_trail_arn: str | None = None

    @classmethod
    def read(cls, outdir: Path, *, organization_trail_arn: str | None = None) -> Assembly:
        return cls(ResolvedAssembly.load(outdir), organization_trail_arn)

    def template(self, stack: str) -> dict[str, Any]:
        return self.resolved.stacks[stack].template

    def acknowledged(self) -> Iterator[Acknowledged]:
        """Every nag acknowledgment (whether its finding fires or not) and every checkov skip."""
        for stack in self.resolved.stacks.values():
            metadata_file = self.resolved.outdir / f"{stack.artifact_id}.metadata.json"
            metadata = json.loads(metadata_file.read_text()) if metadata_file.exists() else {}
            # Construct path -> logical ID, from the assembly's metadata (templates carry paths only under the CLI).
            logical_ids = {
                path: entry["data"] for path, entries in metadata.items() for entry in entries
                if entry["type"] == "aws:cdk:logicalId"
            }
            for path, entries in metadata.items():
                for entry in entries:
                    if entry["type"] == "aws:cdk:acknowledged-rules":
                        for rule, reason in entry["data"].items():
                            yield Acknowledged(stack.artifact_id, path, rule, reason, _under(logical_ids, path))
            paths = {logical_id: path for path, logical_id in logical_ids.items()}
            for logical_id, resource in stack.template.get("Resources", {}).items():
                for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                    yield Acknowledged(stack.artifact_id, paths.get(logical_id, logical_id), skip["id"],
                                       skip["comment"], (logical_id,))

    def buckets(self, item: Acknowledged) -> list[str]:
        resources = self.template(item.stack)["Resources"]
        return [lid for lid in item.resources if resources[lid]["Type"] == "AWS::S3::Bucket"]

    def trails(self) -> list[dict[str, Any]]:
        """The resolved properties of every trail in the assembly."""
        found = []
        for stack in self.resolved.stacks.values():
            for resource in stack.template.get("Resources", {}).values():
                if resource["Type"] == "AWS::CloudTrail::Trail":
                    found.append(self.resolved.resolve(stack.artifact_id, resource["Properties"]))
        return found


def _under(logical_ids: dict[str, str], path: str) -> tuple[str, ...]:
    """Logical IDs of the resources at or below the construct ``path``."""
    prefix = path.rstrip("/") + "/"
    return tuple(logical_id for construct, logical_id in logical_ids.items() if (construct + "/").startswith(prefix))


def check_trail(assembly: Assembly, item: Acknowledged) -> list[str]:
    named = TRAIL_ARN.findall(item.reason)
    if named:
        # A trail outside the templates: the configured organization trail, checked in the account by doctor.
        if named != [assembly.organization_trail_arn]:
            return [f"names trail {named}, but the configured organization trail is {assembly.organization_trail_arn}"]
        return []
    buckets = assembly.buckets(item)
    if not buckets:
        return ["names CloudTrail but acknowledges no bucket whose access a trail could record"]
    trails = assembly.trails()
    if not trails:
        return ["names CloudTrail but the assembly has no trail and no organization trail is configured"]
    problems = []
    for logical_id in buckets:
        arn = assembly.resolved.resolve(item.stack, {"Fn::GetAtt": [logical_id, "Arn"]})
        # Reads and deletes: who looked at or removed the objects (a log bucket's own deliveries may be excluded).
        if all(unrecorded(trail, object_events(arn, writes=False)) for trail in trails):
            problems.append(f"no trail records reads and deletes of the objects of {logical_id} ({arn})")
    return problems


def check_bucket_property(
    what: str, holds: Callable[[dict[str, Any]], bool]
) -> Callable[[Assembly, Acknowledged], list[str]]:
    def check(assembly: Assembly, item: Acknowledged) -> list[str]:
        resources = assembly.template(item.stack)["Resources"]
        buckets = assembly.buckets(item)
        if not buckets:
            return [f"names {what} but acknowledges no bucket"]
        return [f"{lid} has no {what}" for lid in buckets if not holds(resources[lid])]

    return check


def check_isolated(assembly: Assembly, item: Acknowledged) -> list[str]:
    gateways = [
        logical_id for stack in assembly.resolved.stacks.values()
        for logical_id, resource in stack.template.get("Resources", {}).items()
        if resource["Type"] == "AWS::EC2::NatGateway"
    ]
    return [f"claims isolated subnets, but the VPC has NAT gateways {gateways}"] if gateways else []


CLAIMS: dict[re.Pattern[str], Callable[[Assembly, Acknowledged], list[str]]] = {
    re.compile(r"CloudTrail|audit trail", re.IGNORECASE): check_trail,
    re.compile(r"versioning", re.IGNORECASE): check_bucket_property(
        "versioning", lambda r: r.get("Properties", {}).get("VersioningConfiguration", {}).get("Status") == "Enabled"
    ),
    re.compile(r"\bisolated\b|NAT-less", re.IGNORECASE): check_isolated,
    re.compile(r"\bRETAIN\b"): check_bucket_property(
        "RETAIN removal policy",
        lambda r: r.get("DeletionPolicy") == "Retain" and r.get("UpdateReplacePolicy") == "Retain",
    ),
}


def named_controls(reason: str) -> list[re.Pattern[str]]:
    return [pattern for pattern in CLAIMS if pattern.search(reason)]


def false_claims(assembly: Assembly) -> dict[str, list[str]]:
    """``"<stack> <path> <rule>"`` -> what is untrue in its reason, for every reason that names a control."""
    found: dict[str, list[str]] = {}
    for item in assembly.acknowledged():
        problems = [problem for pattern in named_controls(item.reason) for problem in CLAIMS[pattern](assembly, item)]
        if problems:
            found[f"{item.stack} {item.path} {item.rule}"] = problems
    return found
