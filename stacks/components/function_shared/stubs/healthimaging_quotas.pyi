# What mypy reads for ``healthimaging_quotas``, a top-level module of every function's asset (pyproject.toml,
# mypy_path): the repository module it is a copy of.
from stacks.components.function_shared.healthimaging_quotas import BACKFILL_SHARE as BACKFILL_SHARE
from stacks.components.function_shared.healthimaging_quotas import GET_IMAGE_FRAME as GET_IMAGE_FRAME
from stacks.components.function_shared.healthimaging_quotas import GET_IMAGE_SET_METADATA as GET_IMAGE_SET_METADATA
from stacks.components.function_shared.healthimaging_quotas import QUOTAS as QUOTAS
from stacks.components.function_shared.healthimaging_quotas import QUOTAS_SOURCE as QUOTAS_SOURCE
from stacks.components.function_shared.healthimaging_quotas import SEARCH_IMAGE_SETS as SEARCH_IMAGE_SETS
from stacks.components.function_shared.healthimaging_quotas import Pacer as Pacer
from stacks.components.function_shared.healthimaging_quotas import Quota as Quota
