"""The dependency-light core of the model code (placeholder from the stacks branch: the model-code branch of the
layout issue owns this package and its docstring; only s3_uri.py is needed by the stacks)."""
