# What mypy reads for ``result_notice``, a top-level module of the inference functions' asset (pyproject.toml,
# mypy_path): the repository module it is.
from stacks.inference.runtime.result_notice import ResultNotice as ResultNotice
from stacks.inference.runtime.result_notice import publish as publish
