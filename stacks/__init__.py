"""CDK stacks of the platform: deployment units that compose components and grant access."""
