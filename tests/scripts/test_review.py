"""`make review`: two real commits of the platform in a scratch repository, reviewed end to end.

The base commit is this repository's HEAD (``git archive``, read-only); the head commit changes configuration
(a NAT gateway: resources, security-group rules, IAM statements and idle cost appear) and gives the DICOM inbox
bucket a fixed name (a create-only property: the bucket is replaced) with one more bucket-policy statement.
Each side is synthesized once, by the real CDK CLI, for the whole module.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.review.__main__ import main
from scripts.review.diff import diff_stack, property_changes
from scripts.review.schemas import forces_replacement
from stacks.pricing import NAT_GATEWAY, PUBLIC_IPV4
from tests.stacks.assembly import PROJECT_ROOT

INBOX_NAME = "monai-imaging-dev-dicom-inbox-renamed"
# The head commit's app: the project's own build, plus two reviewed-looking edits a PR might make.
HEAD_APP = f'''
import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from stacks.compliance import add_compliance_checks
from stacks.config import build_config
from stacks.platform import build_platform

app = cdk.App()
platform = build_platform(app, build_config(app.node.get_all_context()))
inbox = platform.data.dicom_inbox_bucket
inbox.node.default_child.add_property_override("BucketName", "{INBOX_NAME}")
inbox.add_to_resource_policy(iam.PolicyStatement(
    sid="DenyDeleteOfStudies", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
    actions=["s3:DeleteObjectVersion"], resources=[inbox.arn_for_objects("studies/*")]))
add_compliance_checks(app)
app.synth()
'''


# Build outputs, venvs and caches: everything in the working tree that is not the project's source.
NOT_SOURCES = (".git", ".venv*", "node_modules", "cdk.out", "build", "demo-output", "__pycache__", ".*_cache")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    # A copy of the project's sources (not its git history: the release pipeline's S3 source has no .git)
    # becomes the base commit of a scratch repository.
    repo = tmp_path_factory.mktemp("review") / "repo"
    shutil.copytree(PROJECT_ROOT, repo, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    git(repo, "init", "--quiet", "--initial-branch", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "base")
    cdk_json = json.loads((repo / "cdk.json").read_text())
    cdk_json["context"]["platform"]["defaults"]["network"]["natGateways"] = 1
    (repo / "cdk.json").write_text(json.dumps(cdk_json, indent=2))
    (repo / "app.py").write_text(HEAD_APP)
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-am", "head")
    output = repo / "review.md"
    assert main(["--repo", str(repo), "--base", "HEAD~1", "--output", str(output)]) == 0
    text = output.read_text()
    print(text)
    return text


def section(report: str, title: str) -> str:
    return report.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]


def test_both_sides_synthesize(report: str) -> None:
    assert "Synth of" not in report


def test_the_replaced_data_bearing_bucket_leads_the_report(report: str) -> None:
    risks = section(report, "Data-bearing resources replaced or removed")
    assert "**Data**" in risks
    assert "AWS::S3::Bucket) is **REPLACED**: create-only property BucketName changed" in risks
    # SecureBucket retains its buckets: the old inbox is orphaned, not deleted.
    assert "old one retained (orphaned)" in risks
    assert "None." not in risks


def test_changed_properties_show_old_and_new_values(report: str) -> None:
    data = section(report, "Data")
    assert f"`BucketName` **(create-only)**: (absent) → {INBOX_NAME}" in data


def test_added_resources_and_security_group_rules_of_the_nat_change(report: str) -> None:
    network = section(report, "Network")
    assert "(AWS::EC2::NatGateway)" in network
    assert "(AWS::EC2::EIP)" in network
    images = section(report, "Images")
    # With NAT gateways the image builds run in the VPC behind a security group that only allows HTTPS out.
    assert "(AWS::EC2::SecurityGroup)" in images
    assert "+ `" in images.split("**Security group rules**", 1)[1]
    assert "egress tcp 443-443 to 0.0.0.0/0" in images


def test_iam_statements_added_are_listed_with_their_policy(report: str) -> None:
    data_iam = section(report, "Data").split("**IAM statements**", 1)[1]
    assert "(BucketPolicy)`: Deny action s3:DeleteObjectVersion" in data_iam
    images_iam = section(report, "Images").split("**IAM statements**", 1)[1]
    assert "ec2:CreateNetworkInterface" in images_iam


def test_summary_counts_and_idle_cost_delta(report: str) -> None:
    summary = section(report, "Summary")
    (network_row,) = [line for line in summary.splitlines() if line.startswith("| Network |")]
    cells = [c.strip() for c in network_row.strip("|").split("|")]
    assert int(cells[1]) > 0  # added
    # The NAT gateway and its public IPv4 address are all that the head adds which is billed while idle.
    nat_monthly = NAT_GATEWAY.monthly + PUBLIC_IPV4.monthly
    cost = re.fullmatch(r"\$([\d,]+\.\d\d) → \$([\d,]+\.\d\d) \(\+([\d,]+\.\d\d) \$/month\)", cells[-1])
    assert cost is not None, cells[-1]
    before, after, delta = (float(figure.replace(",", "")) for figure in cost.groups())
    assert delta == pytest.approx(nat_monthly, abs=0.005)
    assert after == pytest.approx(before + nat_monthly, abs=0.01)
    (serving_row,) = [line for line in summary.splitlines() if line.startswith("| Serving |")]
    assert serving_row.split("|")[2].strip() == "0"  # nothing added to an untouched stack


# Replacement decisions from the registry schemas, without a synth.
@pytest.mark.parametrize(
    ("type_", "path", "replaces"),
    [
        ("AWS::S3::Bucket", ("BucketName",), True),  # the name is create-only
        ("AWS::S3::Bucket", ("VersioningConfiguration", "Status"), False),  # updatable in place
        ("AWS::ECR::Repository", ("EncryptionConfiguration", "KmsKey"), True),  # nested create-only pointer
        ("AWS::ECR::Repository", ("EncryptionConfiguration",), True),  # the whole object replaced
        ("AWS::SQS::Queue", ("VisibilityTimeout",), False),
        ("AWS::HealthImaging::Datastore", ("KmsKeyArn",), True),
        ("Custom::Unknown", ("Anything",), False),  # no schema: never guessed as a replacement
    ],
)
def test_forces_replacement_reads_create_only_properties(type_: str, path: tuple[str, ...], replaces: bool) -> None:
    assert forces_replacement(type_, path) is replaces


def test_replacement_propagates_to_create_only_references() -> None:
    # A queue replaced by a name change drags along a resource whose create-only property refers to it.
    old = {"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "a"}},
        "Group": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": {"Fn::GetAtt": ["Queue", "QueueName"]}}},
        "Other": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}},
    }}
    new = json.loads(json.dumps(old))
    new["Resources"]["Queue"]["Properties"]["QueueName"] = "b"
    diff = diff_stack("S", old, new)
    replaced = {c.logical_id: c.replacement for c in diff.replaced}
    assert set(replaced) == {"Queue", "Group"}
    assert replaced["Group"] == "create-only property LogGroupName refers to Queue, which is replaced"


def test_property_changes_walk_to_the_leaves() -> None:
    old = {"A": {"B": [1, 2]}, "C": {"Ref": "X"}}
    new = {"A": {"B": [1, 3]}, "C": {"Ref": "Y"}}
    assert list(property_changes(old, new)) == [(("A", "B", "1"), 2, 3), (("C",), {"Ref": "X"}, {"Ref": "Y"})]
