"""MONAI code that runs inside the platform's containers, on edge devices and in the MAP: a dependency-light
``core`` and one package per runtime (the table in ``model_code/runtimes.py``, docs/architecture.md).
Never imports aws_cdk, testkit, stacks or platform_cli."""
