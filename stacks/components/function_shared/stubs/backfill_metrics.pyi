# What mypy reads for ``backfill_metrics``, a top-level module of the backfill functions' asset (pyproject.toml,
# mypy_path): the repository module it is.
from stacks.backfill.runtime.backfill_metrics import METRICS as METRICS
from stacks.backfill.runtime.backfill_metrics import NAMESPACE as NAMESPACE
from stacks.backfill.runtime.backfill_metrics import dimensions as dimensions
from stacks.backfill.runtime.backfill_metrics import publish as publish
