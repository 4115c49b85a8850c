# What mypy reads for ``seg_reader``, a top-level module of the inference functions' asset (pyproject.toml,
# mypy_path): the repository module it is.
from stacks.inference.runtime.seg_reader import SegReadError as SegReadError
from stacks.inference.runtime.seg_reader import SegSummary as SegSummary
from stacks.inference.runtime.seg_reader import read_seg as read_seg
