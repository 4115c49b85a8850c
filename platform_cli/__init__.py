"""``monai-platform``: the user CLI for a deployed MONAI Imaging Platform.

Every resource name comes from the CloudFormation outputs of the deployed stacks (``<project>-<stage>-<stack>``),
never from this code: see :mod:`platform_cli.outputs` for the outputs each command needs.
"""
