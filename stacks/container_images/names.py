"""Every image and SSM parameter name of the platform, in one module.

The container-images stack writes them (repositories, URI parameters); the serving and training stacks read the
parameters at deploy time, and the release pipeline's image step pushes and records under the same names.
"""

from __future__ import annotations

PYTORCH_INFERENCE = "pytorch-inference"  # the asynchronous endpoint's handler; what training registers to serve
TRITON_INFERENCE = "triton-inference"  # the multi-model endpoint
TRAINING = "training"
# One ECR repository per folder with a Dockerfile under containers/ (a test keeps the two in step), in the
# order containers/buildspec.yml builds them.
IMAGES: tuple[str, ...] = (PYTORCH_INFERENCE, TRITON_INFERENCE, TRAINING)

# The SageMaker DLC base images live in an AWS-owned registry account that differs by region; the buildspec
# resolves it offline. Pulls are limited to these repository names, in this region.
BASE_IMAGE_REPOSITORIES = ("pytorch-inference", "pytorch-training", "sagemaker-tritonserver")

# What pushing an image (and re-pulling its layers) takes on a repository: the stage's own build project, the
# release pipeline's image step, and a release pipeline in another account (the repository policy).
ECR_PUSH_ACTIONS = [
    "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart",
]


def repository_name(prefix: str, image: str) -> str:
    """``<prefix>/<image>``: containers/buildspec.yml pushes to ``$ECR_REPOSITORY_PREFIX/<image>``."""
    return f"{prefix}/{image}"


def repository_arns(*, partition: str, region: str, account: str, prefix: str) -> list[str]:
    """The ARNs of the stage's repositories, one per image."""
    return [f"arn:{partition}:ecr:{region}:{account}:repository/{repository_name(prefix, image)}" for image in IMAGES]


def image_uri_parameter_prefix(prefix: str) -> str:
    return f"/{prefix}/images"


def image_uri_parameter_under(parameter_prefix: str, image: str) -> str:
    """``<parameter_prefix>/<image>/uri``; the record step's shell passes its variables for both parts."""
    return f"{parameter_prefix}/{image}/uri"


def image_uri_parameter_name(prefix: str, image: str) -> str:
    """SSM parameter holding the URI (``<registry>/<repo>:<commit>``) of the image the pipeline pushed last.

    The pipeline writes it after every successful push; the serving and training stacks read it at deploy
    time, so the first deploy must run the pipeline once before those stacks (see docs/infrastructure.md).
    """
    if image not in IMAGES:
        raise ValueError(f"unknown image {image!r}: choose one of {list(IMAGES)}")
    return image_uri_parameter_under(image_uri_parameter_prefix(prefix), image)


def image_uri_parameter_arns(*, partition: str, region: str, account: str, prefix: str) -> list[str]:
    """The ARNs of the stage's image-URI parameters, one per image (what a record step may write)."""
    return [
        f"arn:{partition}:ssm:{region}:{account}:parameter{image_uri_parameter_name(prefix, image)}"
        for image in IMAGES
    ]


def image_uri_writer_role_name(prefix: str) -> str:
    """Role in a stage's account that a release pipeline in another account assumes to write the image URIs."""
    return f"{prefix}-image-uri-writer"


def pushes_cross_account(pipeline_account: str | None, stage_account: str | None) -> bool:
    """True when both accounts are known at synth and differ: the stage must then let the pipeline account in.

    An unknown (environment-agnostic) account on either side changes nothing: same-account is the default.
    """
    return bool(pipeline_account) and bool(stage_account) and pipeline_account != stage_account
