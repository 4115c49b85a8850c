"""Names shared by the images stack (which writes them) and the stacks that read them (serving, training)."""

from __future__ import annotations

PYTORCH_INFERENCE = "pytorch-inference"  # the asynchronous endpoint's handler; what training registers to serve
TRITON_INFERENCE = "triton-inference"  # the multi-model endpoint
TRAINING = "training"
# One ECR repository per folder with a Dockerfile under containers/ (a test keeps the two in step), in the
# order containers/buildspec.yml builds them.
IMAGES: tuple[str, ...] = (PYTORCH_INFERENCE, TRITON_INFERENCE, TRAINING)


def repository_name(prefix: str, image: str) -> str:
    """``<prefix>/<image>``: containers/buildspec.yml pushes to ``$ECR_REPOSITORY_PREFIX/<image>``."""
    return f"{prefix}/{image}"


def image_uri_parameter_prefix(prefix: str) -> str:
    return f"/{prefix}/images"


def image_uri_parameter_name(prefix: str, image: str) -> str:
    """SSM parameter holding the URI (``<registry>/<repo>:<commit>``) of the image the pipeline pushed last.

    The pipeline writes it after every successful push; the serving and training stacks read it at deploy
    time, so the first deploy must run the pipeline once before those stacks (see docs/infrastructure.md).
    """
    if image not in IMAGES:
        raise ValueError(f"unknown image {image!r}: choose one of {list(IMAGES)}")
    return f"{image_uri_parameter_prefix(prefix)}/{image}/uri"


def image_uri_writer_role_name(prefix: str) -> str:
    """Role in a stage's account that a release pipeline in another account assumes to write the image URIs."""
    return f"{prefix}-image-uri-writer"


def pushes_cross_account(pipeline_account: str | None, stage_account: str | None) -> bool:
    """True when both accounts are known at synth and differ: the stage must then let the pipeline account in.

    An unknown (environment-agnostic) account on either side changes nothing: same-account is the default.
    """
    return bool(pipeline_account) and bool(stage_account) and pipeline_account != stage_account
