"""Lambda handlers of the inference stack (boto3 only, no bundling).

Lambda loads each handler as a top-level module of the function's asset, which holds this folder and the shared
modules (function_settings.py, s3_uri.py) beside it (stacks/components/function_code.py). Imported from the
repository as this package, the handlers find the same modules under the same names through this import, and
``store_seg`` (import_seg's STOW-RS, a module of this folder) under its top-level name as in the asset.
"""

from stacks.components.function_shared import expose_runtime_modules, expose_shared_modules

expose_shared_modules()
# index_result imports its SEG reader, import_seg its STOW-RS and its results notice, as the sibling modules they are
# in the asset.
expose_runtime_modules(__name__, ("seg_reader", "store_seg", "result_notice"))
