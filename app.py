#!/usr/bin/env python3
"""CDK entry point: read the configuration once, build the stage's stacks, run the compliance checks."""

from __future__ import annotations

import aws_cdk as cdk

from stacks.compliance import add_compliance_checks
from stacks.config import build_config
from stacks.platform import build_platform


def main() -> None:
    app = cdk.App()
    config = build_config(app.node.get_all_context())
    build_platform(app, config)
    add_compliance_checks(app)
    app.synth()


if __name__ == "__main__":
    main()
