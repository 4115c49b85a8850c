# What mypy reads for ``function_settings``, the top-level module of every function's asset (pyproject.toml,
# mypy_path): the repository module it is a copy of.
from stacks.components.function_shared.function_settings import EnvironmentSettings as EnvironmentSettings
