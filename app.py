#!/usr/bin/env python3
"""CDK entry point: read the configuration once, build the stage's stacks, run the compliance checks."""

from __future__ import annotations

import aws_cdk as cdk

from stacks.compliance import add_compliance_checks
from stacks.config import build_config, pipeline_enabled
from stacks.platform import build_platform


def main() -> None:
    app = cdk.App()
    context = app.node.get_all_context()
    if pipeline_enabled(context):
        # The release pipeline deploys the stages itself; imported here so a plain synth never loads it.
        from stacks.pipeline.stack import build_release_pipeline

        build_release_pipeline(app, context)
    else:
        build_platform(app, build_config(context))
    add_compliance_checks(app)
    app.synth()


if __name__ == "__main__":
    main()
