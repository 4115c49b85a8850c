"""The one price table of the platform: what the resources it creates cost while nobody uses them.

APPROXIMATE ON-DEMAND LIST PRICES, us-east-1, in USD, written down on PRICES_AS_OF. They were not fetched from
the AWS Price List API (this project synthesizes offline, without an account); re-check each on the page in its
``source`` before quoting a figure, and update the date with the values. ``scripts/idle_cost.py`` multiplies them
by what the synthesized templates create; nothing else in the repository holds a price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

PRICES_AS_OF = date(2026, 11, 21)
PRICE_REGION = "us-east-1"
# AWS bills monthly items and quotes hourly ones over a 730-hour month (365 * 24 / 12).
HOURS_PER_MONTH = 730.0
PRICE_CAVEAT = (
    f"approximate {PRICE_REGION} on-demand list prices written down on {PRICES_AS_OF.isoformat()}; "
    "re-check them on the AWS pricing pages (stacks/pricing.py names each) before quoting"
)


@dataclass(frozen=True)
class Price:
    usd: float
    per: str  # "hour" or "month": the unit AWS quotes it in
    source: str

    def __post_init__(self) -> None:
        if self.per not in ("hour", "month"):
            raise ValueError(f"a price is quoted per 'hour' or per 'month', got {self.per!r}")

    @property
    def hourly(self) -> float:
        return self.usd if self.per == "hour" else self.usd / HOURS_PER_MONTH

    @property
    def monthly(self) -> float:
        return self.usd * HOURS_PER_MONTH if self.per == "hour" else self.usd


_SAGEMAKER = "https://aws.amazon.com/sagemaker/pricing/ (Real-Time Inference)"
_VPC = "https://aws.amazon.com/vpc/pricing/"

# SageMaker hosting (real-time and asynchronous inference bill the same instance-hours), per instance-hour.
SAGEMAKER_HOSTING: dict[str, Price] = {
    "ml.g4dn.xlarge": Price(0.7364, "hour", _SAGEMAKER),
    "ml.g4dn.2xlarge": Price(0.94, "hour", _SAGEMAKER),
    "ml.g5.xlarge": Price(1.408, "hour", _SAGEMAKER),
    "ml.g5.2xlarge": Price(1.515, "hour", _SAGEMAKER),
    "ml.p3.2xlarge": Price(3.825, "hour", _SAGEMAKER),
    "ml.m5.large": Price(0.115, "hour", _SAGEMAKER),
    "ml.m5.xlarge": Price(0.23, "hour", _SAGEMAKER),
    "ml.c5.xlarge": Price(0.204, "hour", _SAGEMAKER),
}

NAT_GATEWAY = Price(0.045, "hour", _VPC)  # per gateway-hour, plus $0.045 per GB processed (usage)
PUBLIC_IPV4 = Price(0.005, "hour", _VPC)  # every public IPv4 address, attached or not (the NAT gateways' EIPs)
INTERFACE_ENDPOINT_AZ = Price(0.01, "hour", "https://aws.amazon.com/privatelink/pricing/")  # per endpoint per AZ
KMS_KEY = Price(1.00, "month", "https://aws.amazon.com/kms/pricing/")  # per customer managed key, requests extra
CLOUDWATCH_ALARM = Price(0.10, "month", "https://aws.amazon.com/cloudwatch/pricing/")  # standard metric alarm
CODEPIPELINE_V1 = Price(1.00, "month", "https://aws.amazon.com/codepipeline/pricing/")  # per active V1 pipeline
SECRET = Price(0.40, "month", "https://aws.amazon.com/secrets-manager/pricing/")

# Usage prices a backfill estimate multiplies (monai-platform backfill start --dry-run), per unit named.
STEP_FUNCTIONS_STANDARD_PER_TRANSITION = 0.025 / 1000  # Standard workflows, per state transition
STEP_FUNCTIONS_SOURCE = "https://aws.amazon.com/step-functions/pricing/"

# Resource types that cost nothing while idle: billed per use (requests, GB stored, GB processed, minutes).
USAGE_BASED: dict[str, str] = {
    "AWS::HealthImaging::Datastore": "HealthImaging bills GB stored and API calls; an empty data store is $0",
    "AWS::S3::Bucket": "S3 bills GB stored and requests",
    "AWS::Lambda::Function": "Lambda bills requests and GB-seconds",
    "AWS::SNS::Topic": "SNS bills publishes and deliveries",
    "AWS::SQS::Queue": "SQS bills requests",
    "AWS::CodeBuild::Project": "CodeBuild bills build minutes",
    "AWS::ECR::Repository": "ECR bills GB stored",
    "AWS::Logs::LogGroup": "CloudWatch Logs bills GB ingested and stored",
    "AWS::StepFunctions::StateMachine": "Step Functions bills state transitions",
    "AWS::Events::Rule": "EventBridge bills custom and partner events; AWS service events are free",
    "AWS::CloudFront::Distribution": "CloudFront (pay as you go) bills requests and data transferred out",
    "AWS::CloudFront::Function": "CloudFront Functions bill invocations",
    "AWS::Cognito::UserPool": "Cognito (Plus plan) bills monthly active users; nobody signed in is $0",
    "AWS::ApiGatewayV2::Api": "API Gateway HTTP APIs bill requests",
    "AWS::CloudTrail::Trail": "CloudTrail bills data events ($0.10 per 100,000) and copies of management events "
    "beyond an account's first trail ($2.00 per 100,000); delivery to S3 and CloudWatch Logs bills as those do",
    "AWS::SSM::Parameter": "standard SSM parameters are free; API calls above the free throughput are billed",
}
CODEPIPELINE_V2_NOTE = "CodePipeline V2 bills action-execution minutes ($0.002/min), nothing while idle"


class UnknownPriceError(KeyError):
    """A resource the platform creates has no price here: add it rather than let it count as $0."""


def sagemaker_hosting(instance_type: str) -> Price:
    try:
        return SAGEMAKER_HOSTING[instance_type]
    except KeyError:
        raise UnknownPriceError(
            f"no SageMaker hosting price for {instance_type!r} in stacks/pricing.py: add its {PRICE_REGION} "
            f"on-demand price from {_SAGEMAKER} to SAGEMAKER_HOSTING (known: {sorted(SAGEMAKER_HOSTING)})"
        ) from None
