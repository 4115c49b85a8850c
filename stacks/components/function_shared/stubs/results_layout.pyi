# What mypy reads for ``results_layout``, a top-level module of every function's asset (pyproject.toml, mypy_path):
# the repository module it is a copy of.
from stacks.components.function_shared.results_layout import RECORD_SUFFIX as RECORD_SUFFIX
from stacks.components.function_shared.results_layout import RESULTS_PREFIX as RESULTS_PREFIX
from stacks.components.function_shared.results_layout import image_set_of as image_set_of
from stacks.components.function_shared.results_layout import model_prefix as model_prefix
from stacks.components.function_shared.results_layout import record_key as record_key
