"""Every role of an assembly proven both ways: each (action, resource) its code and AWS request with it is allowed by
its synthesized policy, and each action the policy grants is used or listed with its reason (unused_grants.py).

    proof = prove(ResolvedAssembly.load(outdir), recorded_calls)
    proof.roles["Approval/DeployApprovedServiceRole7161BE71"].gaps  # requests the policy does not allow

The requests come from three places: the recorded calls of the code each role runs (iam_actions.py, translated
into deployed names by deployed_names.py), what AWS does next after such a call with another role, and what
services do with the roles the templates wire up (service_side.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.stacks.contracts.deployed_names import Names, translated
from tests.stacks.contracts.iam_actions import Requirement, caller_requirements
from tests.stacks.contracts.iam_eval import Decision, decide, unused_grants
from tests.stacks.contracts.resolve import ResolvedAssembly
from tests.stacks.contracts.service_side import effects_of_call, template_requirements
from tests.stacks.contracts.unused_grants import UnusedReason, reason_for, role_reason
from tests.stacks.contracts.world import World


@dataclass(frozen=True)
class Pair:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...]
    reason: str
    decision: Decision
    recorded: bool  # from a recorded call (else derived from the templates)
    tests: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.decision.verdict == "allowed"

    def __str__(self) -> str:
        context = f" with {dict(self.context)}" if self.context else ""
        unevaluated = f"; unevaluated: {self.decision.unevaluated}" if self.decision.unevaluated else ""
        tests = f"; recorded in {self.tests[0]}" if self.tests else ""
        return (f"{self.decision.verdict.upper()}: {self.action} on {self.resource}{context} -- {self.reason}"
                f"{unevaluated}{tests}")


@dataclass
class RoleProof:
    key: str
    services: list[str]
    pairs: list[Pair] = field(default_factory=list)
    explained: list[tuple[str, str, UnusedReason]] = field(default_factory=list)  # (statement, action, reason)
    unexplained: list[tuple[str, str]] = field(default_factory=list)  # (statement, action)
    no_requests_reason: UnusedReason | None = None  # why a role with no request at all exists

    @property
    def gaps(self) -> list[Pair]:
        return [pair for pair in self.pairs if not pair.ok]

    @property
    def recorded(self) -> int:
        return sum(pair.recorded for pair in self.pairs)


@dataclass
class Proof:
    roles: dict[str, RoleProof]
    names: Names

    def summary(self) -> dict[str, str]:
        return {key: f"{len(p.pairs) - len(p.gaps)}/{len(p.pairs)} pairs allowed ({p.recorded} recorded), "
                     f"{len(p.explained)} unused with reasons, {len(p.unexplained)} unused without"
                for key, p in sorted(self.roles.items())}


def requirements(world: World, calls: list[dict[str, Any]]) -> tuple[dict[str, dict[Requirement, set[str]]], Names]:
    """Role key -> requirement -> the recorded tests that need it (none: derived from the templates); the names."""
    needs: dict[str, dict[Requirement, set[str]]] = defaultdict(dict)
    mine, names = translated(calls, world)
    for entry, call in mine:
        for requirement in caller_requirements(call, world):
            needs[entry.role].setdefault(requirement, set()).add(call["test"])
        for role, requirement in effects_of_call(call, world):
            needs[role].setdefault(requirement, set()).add(call["test"])
    for role, derived in template_requirements(world).items():
        for requirement in derived:
            needs[role].setdefault(requirement, set())
    return needs, names


def prove(assembly: ResolvedAssembly, calls: list[dict[str, Any]]) -> Proof:
    world = World.of(assembly)
    needs, names = requirements(world, calls)
    roles = {}
    for key, grants in world.roles.items():
        statements = grants.statements()
        proof = RoleProof(key, grants.services)
        for requirement, tests in needs.get(key, {}).items():
            context = dict(requirement.context)
            decisions = [decide(statements, requirement.action, resource, context) for resource in requirement.resources]
            if requirement.alternatives:
                forms = [decide(statements, requirement.action, r, context) for r in requirement.alternatives]
                decisions.append(next((d for d in forms if d.verdict == "allowed"), forms[0]))
            for decision in decisions:
                proof.pairs.append(Pair(requirement.action, decision.resource, requirement.context,
                                        requirement.reason, decision, bool(tests), tuple(sorted(tests))))
        used = [(pair.action, pair.resource) for pair in proof.pairs if pair.ok]
        used_through: dict[str, set[str]] = defaultdict(set)
        for pair in proof.pairs:
            for match in pair.decision.matches:
                if pair.ok and match.effect == "Allow":
                    used_through[match.statement].add(pair.action)
        by_label = dict(statements)
        for label, actions in unused_grants(statements, used).items():
            for action in actions:
                reason = reason_for(grants, label, action, by_label[label], used_through[label])
                if reason is None:
                    proof.unexplained.append((label, action))
                else:
                    proof.explained.append((label, action, reason))
        proof.no_requests_reason = role_reason(grants) if not proof.pairs else None
        roles[key] = proof
    return Proof(roles, names)
