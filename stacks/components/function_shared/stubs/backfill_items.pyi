# What mypy reads for ``backfill_items``, a top-level module of the backfill functions' asset (pyproject.toml,
# mypy_path): the repository module it is.
from stacks.backfill.runtime.backfill_items import BackfillInputError as BackfillInputError
from stacks.backfill.runtime.backfill_items import ImageSetItem as ImageSetItem
from stacks.backfill.runtime.backfill_items import Run as Run
from stacks.backfill.runtime.backfill_items import Selection as Selection
from stacks.backfill.runtime.backfill_items import list_image_sets as list_image_sets
from stacks.backfill.runtime.backfill_items import pending as pending
from stacks.backfill.runtime.backfill_items import read_backlog as read_backlog
from stacks.backfill.runtime.backfill_items import room as room
from stacks.backfill.runtime.backfill_items import submit_batch as submit_batch
from stacks.backfill.runtime.backfill_items import utc_now as utc_now
