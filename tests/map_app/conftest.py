"""The MAP tests need MONAI Deploy App SDK 4 (holoscan), which lives only in the MAP venv (`make map-venv`).

In the main venv, test_map_venv.py runs test_map_app.py with the MAP venv's python; inside the MAP venv,
test_map_app.py runs directly. Each venv collects only the module meant for it, so nothing is skipped.
"""

from __future__ import annotations

import importlib.util

collect_ignore = (
    ["test_map_venv.py"] if importlib.util.find_spec("monai.deploy") is not None else ["test_map_app.py"]
)
