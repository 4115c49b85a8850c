"""The offline edge runner as a Greengrass v2 component (issue 9)."""
