"""Compare two synthesized versions of each stack: resources, replacements, IAM statements, security groups."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from scripts.assembly import Template
from scripts.review.schemas import create_only_paths, forces_replacement

# Resources whose replacement or deletion loses (or orphans) data someone stored; reviewers look at these first.
DATA_BEARING_TYPES = frozenset({
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::HealthImaging::Datastore",
    "AWS::Logs::LogGroup",
    "AWS::SQS::Queue",
    "AWS::ECR::Repository",
    "AWS::DynamoDB::Table",
    "AWS::EFS::FileSystem",
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::SageMaker::ModelPackageGroup",
    "AWS::SecretsManager::Secret",
})
# CDK's own bookkeeping (the analytics blob changes with any construct change): never a reviewable change.
IGNORED_TYPES = frozenset({"AWS::CDK::Metadata"})
# Top-level resource attributes whose change is a real change (Metadata carries paths and asset hashes: noise).
COMPARED_ATTRIBUTES = ("Properties", "DeletionPolicy", "UpdateReplacePolicy", "Condition")


@dataclass(frozen=True)
class PropertyChange:
    path: tuple[str, ...]
    old: Any
    new: Any
    replaces: bool


@dataclass
class ResourceChange:
    logical_id: str
    type_: str
    changes: list[PropertyChange] = field(default_factory=list)
    # None: the change does not replace; otherwise the reason it does.
    replacement: str | None = None
    deletion_policy: str | None = None

    @property
    def data_bearing(self) -> bool:
        return self.type_ in DATA_BEARING_TYPES


@dataclass(frozen=True)
class StatementChange:
    owner: str  # "<LogicalId> (<what>)": which policy the statement belongs to
    statement: str  # canonical, readable form
    added: bool


@dataclass
class StackDiff:
    stack: str
    added: list[ResourceChange] = field(default_factory=list)
    removed: list[ResourceChange] = field(default_factory=list)
    changed: list[ResourceChange] = field(default_factory=list)
    iam: list[StatementChange] = field(default_factory=list)
    security_groups: list[StatementChange] = field(default_factory=list)

    @property
    def replaced(self) -> list[ResourceChange]:
        return [c for c in self.changed if c.replacement]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.iam or self.security_groups)


def property_changes(old: Any, new: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """Leaf-most differing paths between two property trees (lists of equal length compare item by item)."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict) and not _is_intrinsic(old) and not _is_intrinsic(new):
        for key in sorted(set(old) | set(new)):
            yield from property_changes(old.get(key), new.get(key), (*path, key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from property_changes(a, b, (*path, str(index)))
    else:
        yield path, old, new


def _is_intrinsic(value: dict[str, Any]) -> bool:
    return len(value) == 1 and (next(iter(value)).startswith("Fn::") or "Ref" in value)


def _references(value: Any) -> set[str]:
    """Logical IDs a property value points at (Ref, Fn::GetAtt, ${Id} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            found.add(value["Ref"])
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute:
            found.add(str(attribute[0]))
        elif isinstance(attribute, str):
            found.add(attribute.split(".")[0])
        sub = value.get("Fn::Sub")
        text = sub[0] if isinstance(sub, list) and sub else sub
        if isinstance(text, str):
            found.update(part.split("}")[0].split(".")[0] for part in text.split("${")[1:])
        for child in value.values():
            found |= _references(child)
    elif isinstance(value, list):
        for child in value:
            found |= _references(child)
    return found


def _create_only_values(resource: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    properties = resource.get("Properties", {})
    for path in create_only_paths(resource.get("Type", "")):
        if path and path[0] in properties:
            yield path[0], properties[path[0]]


def _resource_change(logical_id: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> ResourceChange | None:
    type_ = str(new.get("Type"))
    change = ResourceChange(logical_id=logical_id, type_=type_, deletion_policy=old.get("DeletionPolicy"))
    if old.get("Type") != type_:
        change.replacement = f"type changed from {old.get('Type')}"
    for attribute in COMPARED_ATTRIBUTES:
        if attribute == "Properties":
            for path, a, b in property_changes(old.get("Properties", {}), new.get("Properties", {})):
                replaces = forces_replacement(type_, path)
                change.changes.append(PropertyChange(path=path, old=a, new=b, replaces=replaces))
                if replaces and change.replacement is None:
                    change.replacement = f"create-only property {'.'.join(path)} changed"
        elif old.get(attribute) != new.get(attribute):
            change.changes.append(PropertyChange(path=(attribute,), old=old.get(attribute), new=new.get(attribute),
                                                 replaces=False))
    return change if change.changes or change.replacement else None


def _propagate_replacements(diff: StackDiff, new: Template) -> None:
    # A create-only property that refers to a replaced resource gets a new value at deploy time: that resource
    # is replaced too, although its template text did not change.
    resources = new.get("Resources", {})
    by_id = {c.logical_id: c for c in diff.changed}
    replaced = {c.logical_id for c in diff.changed if c.replacement}
    grew = True
    while grew:
        grew = False
        for logical_id, resource in resources.items():
            if logical_id in replaced:
                continue
            for name, value in _create_only_values(resource):
                hit = _references(value) & replaced
                if hit:
                    cause = sorted(hit)[0]
                    change = by_id.get(logical_id)
                    if change is None:
                        change = ResourceChange(logical_id, str(resource.get("Type")),
                                                deletion_policy=resource.get("DeletionPolicy"))
                        by_id[logical_id] = change
                        diff.changed.append(change)
                    change.replacement = f"create-only property {name} refers to {cause}, which is replaced"
                    replaced.add(logical_id)
                    grew = True
                    break


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _readable(value: Any) -> str:
    """A policy value as a reviewer reads it: intrinsics as <LogicalId.Attr>, lists joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_readable(v) for v in value)
    if isinstance(value, dict):
        if "Ref" in value and len(value) == 1:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return f"<{'.'.join(map(str, target)) if isinstance(target, list) else target}>"
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return str(delimiter).join(_readable(item) for item in items)
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            return str(sub[0] if isinstance(sub, list) else sub)
        if "Fn::ImportValue" in value:
            return f"import({_readable(value['Fn::ImportValue'])})"
    return _canonical(value)


def _statement_text(statement: Mapping[str, Any]) -> str:
    parts = [str(statement.get("Effect", "?"))]
    for key in ("Action", "NotAction"):
        if key in statement:
            parts.append(f"{key.lower()} {_readable(statement[key])}")
    for key in ("Principal", "NotPrincipal"):
        if key in statement:
            parts.append(f"{key.lower()} {_readable(statement[key])}")
    for key in ("Resource", "NotResource"):
        if key in statement:
            parts.append(f"on {_readable(statement[key])}")
    if "Condition" in statement:
        parts.append(f"if {_canonical(statement['Condition'])}")
    return " ".join(parts)


def _documents(resource: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(what, policy document) pairs that a resource carries."""
    properties = resource.get("Properties", {})
    type_ = resource.get("Type")
    if type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy",
                 "AWS::SQS::QueuePolicy"):
        yield type_.split("::")[-1], properties.get("PolicyDocument")
    elif type_ == "AWS::IAM::Role":
        yield "trust policy", properties.get("AssumeRolePolicyDocument")
        for policy in properties.get("Policies", []) or []:
            yield f"inline {policy.get('PolicyName')}", policy.get("PolicyDocument")
    elif type_ == "AWS::KMS::Key":
        yield "key policy", properties.get("KeyPolicy")
    elif type_ == "AWS::ECR::Repository":
        yield "repository policy", properties.get("RepositoryPolicyText")


def iam_statements(template: Template) -> dict[str, set[str]]:
    """Owner -> readable statements, over every policy-carrying resource (managed policy ARNs included)."""
    owners: dict[str, set[str]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        for what, document in _documents(resource):
            if not isinstance(document, dict):
                continue
            statements = document.get("Statement", [])
            statements = statements if isinstance(statements, list) else [statements]
            owners.setdefault(f"{logical_id} ({what})", set()).update(_statement_text(s) for s in statements)
        if resource.get("Type") == "AWS::IAM::Role":
            arns = resource.get("Properties", {}).get("ManagedPolicyArns", []) or []
            owners.setdefault(f"{logical_id} (managed policies)", set()).update(
                f"attach {_readable(arn)}" for arn in arns
            )
    return owners


def _rule_text(rule: Mapping[str, Any], direction: str) -> str:
    peer = (rule.get("CidrIp") or rule.get("CidrIpv6") or rule.get("DestinationPrefixListId")
            or rule.get("SourcePrefixListId") or rule.get("SourceSecurityGroupId")
            or rule.get("DestinationSecurityGroupId"))
    ports = f"{rule.get('FromPort', 'all')}-{rule.get('ToPort', 'all')}"
    return f"{direction} {rule.get('IpProtocol', '?')} {ports} {'from' if direction == 'ingress' else 'to'} " \
           f"{_readable(peer)}" + (f" ({rule['Description']})" if rule.get("Description") else "")


def security_group_rules(template: Template) -> dict[str, set[str]]:
    """Security group -> readable rules, inline (SecurityGroupIngress/Egress) and standalone rule resources."""
    groups: dict[str, set[str]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        type_ = resource.get("Type")
        if type_ == "AWS::EC2::SecurityGroup":
            rules = groups.setdefault(logical_id, set())
            for key, direction in (("SecurityGroupIngress", "ingress"), ("SecurityGroupEgress", "egress")):
                rules.update(_rule_text(rule, direction) for rule in properties.get(key, []) or [])
        elif type_ in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
            direction = "ingress" if type_.endswith("Ingress") else "egress"
            group = _readable(properties.get("GroupId"))
            groups.setdefault(f"{group} via {logical_id}", set()).add(_rule_text(properties, direction))
    return groups


def _set_delta(old: Mapping[str, set[str]], new: Mapping[str, set[str]]) -> list[StatementChange]:
    delta: list[StatementChange] = []
    for owner in sorted(set(old) | set(new)):
        before, after = old.get(owner, set()), new.get(owner, set())
        delta.extend(StatementChange(owner, text, added=False) for text in sorted(before - after))
        delta.extend(StatementChange(owner, text, added=True) for text in sorted(after - before))
    return delta


def diff_stack(stack: str, old: Template | None, new: Template | None) -> StackDiff:
    """Everything that changes in one stack between base (``old``) and head (``new``); None: stack absent."""
    old, new = old or {}, new or {}
    diff = StackDiff(stack=stack)
    old_resources = {k: v for k, v in old.get("Resources", {}).items() if v.get("Type") not in IGNORED_TYPES}
    new_resources = {k: v for k, v in new.get("Resources", {}).items() if v.get("Type") not in IGNORED_TYPES}
    for logical_id in sorted(set(new_resources) - set(old_resources)):
        resource = new_resources[logical_id]
        diff.added.append(ResourceChange(logical_id, str(resource.get("Type")),
                                         deletion_policy=resource.get("DeletionPolicy")))
    for logical_id in sorted(set(old_resources) - set(new_resources)):
        resource = old_resources[logical_id]
        diff.removed.append(ResourceChange(logical_id, str(resource.get("Type")),
                                           deletion_policy=resource.get("DeletionPolicy")))
    for logical_id in sorted(set(old_resources) & set(new_resources)):
        change = _resource_change(logical_id, old_resources[logical_id], new_resources[logical_id])
        if change is not None:
            diff.changed.append(change)
    _propagate_replacements(diff, new)
    diff.iam = _set_delta(iam_statements(old), iam_statements(new))
    diff.security_groups = _set_delta(security_group_rules(old), security_group_rules(new))
    return diff
