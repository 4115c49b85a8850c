"""Lambda handlers of the inference stack (boto3 only, no bundling).

Lambda loads each handler as a top-level module of the function's asset, which holds this folder and the shared
modules (function_settings.py, s3_uri.py) beside it (stacks/components/function_code.py). Imported from the
repository as this package, the handlers find the same modules under the same names through this import, and
``store_seg`` (import_seg's STOW-RS, a module of this folder) under its top-level name as in the asset.
"""

import sys

from stacks.components.function_shared import expose_shared_modules

expose_shared_modules()

from stacks.inference.runtime import store_seg  # noqa: E402 - after the shared names, which it does not need

sys.modules.setdefault("store_seg", store_seg)
