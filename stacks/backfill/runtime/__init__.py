"""Lambda handlers of the backfill stack (boto3 only, no bundling) and the item logic they run.

Lambda loads each handler as a top-level module of the function's asset, which holds this folder and the shared
modules (function_settings.py, s3_uri.py, healthimaging_quotas.py, results_layout.py) beside it
(stacks/components/function_code.py). Imported from the repository as this package, the handlers find the same
modules under the same names through this import.
"""

from stacks.components.function_shared import expose_runtime_modules, expose_shared_modules

expose_shared_modules()
# The handlers import the item logic and the metrics as the sibling modules they are in the asset.
expose_runtime_modules(__name__, ("backfill_items", "backfill_metrics"))
