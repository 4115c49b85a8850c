"""What the synthesized templates say about the resources the platform's calls touch: the key that encrypts each
bucket, topic and queue, the data stores, the endpoints with their configs and execution roles.

Everything is read from one resolved assembly (tests/stacks/contracts/resolve.py), so the names are the placeholder
names the policies are resolved with, and an (action, resource) pair built from them is judged against the same
names the policies carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tests.stacks.contracts.policies import RoleGrants, collect
from tests.stacks.contracts.resolve import ACCOUNT, PARTITION, ResolvedAssembly, iter_resources


@dataclass(frozen=True)
class Endpoint:
    name: str
    config: dict[str, Any]  # the endpoint config's resolved properties
    roles: tuple[str, ...]  # role keys of the models its variants run


@dataclass
class World:
    assembly: ResolvedAssembly
    region: str = "us-east-1"
    bucket_keys: dict[str, str] = field(default_factory=dict)  # bucket name -> KMS key ARN
    topic_keys: dict[str, str] = field(default_factory=dict)  # topic ARN -> KMS key ARN
    queue_arns: dict[str, str] = field(default_factory=dict)  # queue URL -> queue ARN
    queue_keys: dict[str, str] = field(default_factory=dict)  # queue ARN -> KMS key ARN
    datastores: dict[str, str] = field(default_factory=dict)  # data store ID -> ARN
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    @classmethod
    def of(cls, assembly: ResolvedAssembly) -> World:
        world = cls(assembly, region=next(iter(assembly.stacks.values())).region)
        for stack, logical, resource in iter_resources(assembly):
            kind = resource["Type"]
            if kind not in ("AWS::S3::Bucket", "AWS::SNS::Topic", "AWS::SQS::Queue", "AWS::HealthImaging::Datastore"):
                continue
            props = assembly.resolve(stack, resource.get("Properties", {}))
            ref = assembly.resolve(stack, {"Ref": logical})
            if kind == "AWS::S3::Bucket":
                for rule in props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
                    key = rule.get("ServerSideEncryptionByDefault", {}).get("KMSMasterKeyID")
                    if key:
                        world.bucket_keys[ref] = world.key_arn(key)
            elif kind == "AWS::SNS::Topic" and props.get("KmsMasterKeyId"):
                world.topic_keys[ref] = world.key_arn(props["KmsMasterKeyId"])
            elif kind == "AWS::SQS::Queue":
                arn = assembly.resolve(stack, {"Fn::GetAtt": [logical, "Arn"]})
                world.queue_arns[ref] = arn
                if props.get("KmsMasterKeyId"):
                    world.queue_keys[arn] = world.key_arn(props["KmsMasterKeyId"])
            else:
                datastore_id = assembly.resolve(stack, {"Fn::GetAtt": [logical, "DatastoreId"]})
                world.datastores[datastore_id] = assembly.resolve(stack, {"Fn::GetAtt": [logical, "DatastoreArn"]})
        world._read_endpoints()
        return world

    def _read_endpoints(self) -> None:
        models: dict[str, str] = {}  # model name -> role key
        for stack, logical, resource in iter_resources(self.assembly, "AWS::SageMaker::Model"):
            props = self.assembly.resolve(stack, resource["Properties"])
            name = self.assembly.resolve(stack, {"Fn::GetAtt": [logical, "ModelName"]})
            models[name] = self.role_of_arn(props["ExecutionRoleArn"])
        configs = {}
        for stack, logical, resource in iter_resources(self.assembly, "AWS::SageMaker::EndpointConfig"):
            name = self.assembly.resolve(stack, {"Fn::GetAtt": [logical, "EndpointConfigName"]})
            configs[name] = self.assembly.resolve(stack, resource["Properties"])
        for stack, _logical, resource in iter_resources(self.assembly, "AWS::SageMaker::Endpoint"):
            props = self.assembly.resolve(stack, resource["Properties"])
            config = configs[props["EndpointConfigName"]]
            roles = tuple(sorted({models[v["ModelName"]] for v in config.get("ProductionVariants", [])}))
            self.endpoints[props["EndpointName"]] = Endpoint(props["EndpointName"], config, roles)

    @cached_property
    def roles(self) -> dict[str, RoleGrants]:
        return collect(self.assembly)[0]

    @cached_property
    def _roles_by_arn(self) -> dict[str, str]:
        return {grants.role_arn: key for key, grants in self.roles.items()}

    def role_of_arn(self, arn: str) -> str:
        """The role key of a role ARN the templates define; KeyError names the ARN otherwise."""
        if arn not in self._roles_by_arn:
            raise KeyError(f"no role of this assembly has the ARN {arn}")
        return self._roles_by_arn[arn]

    def has_role_arn(self, arn: str) -> bool:
        return arn in self._roles_by_arn

    def arn(self, service: str, resource: str, *, region: str | None = None, account: str = ACCOUNT) -> str:
        return f"arn:{PARTITION}:{service}:{self.region if region is None else region}:{account}:{resource}"

    def key_arn(self, value: str) -> str:
        return value if value.startswith("arn:") else self.arn("kms", f"key/{value}")

    def the_datastore(self) -> str | None:
        """The platform's one data store ID (None when the assembly has none or several)."""
        return next(iter(self.datastores)) if len(self.datastores) == 1 else None
