"""The modules every platform function carries at the top level of its asset, beside its own handlers.

``SHARED_MODULES`` maps the top-level name a handler imports to the repository module it is a copy of:
stacks/components/function_code.py copies each file into every function's asset at synth, and
:func:`expose_shared_modules` gives the same names to the repository's imports of the handlers (the stacks read
their ENV_* constants, the tests run them), so a handler runs the very code its asset carries.
"""

from __future__ import annotations

import importlib
import sys

SHARED_MODULES: dict[str, str] = {
    # One settings helper for every handler (their environment variables, read once).
    "function_settings": "stacks.components.function_shared.function_settings",
    # The platform's one S3-URI parser (standard library only, like everything a function carries).
    "s3_uri": "model_code.core.s3_uri",
    # HealthImaging's published API rate quotas (one place, with their source) and the pacer under them.
    "healthimaging_quotas": "stacks.components.function_shared.healthimaging_quotas",
    # The results index's partitioned layout: the backfill reads it, the result writer writes it.
    "results_layout": "stacks.components.function_shared.results_layout",
    # The viewer's deep link (standard library only): results name the study with its SEG in the viewer.
    "viewer_link": "model_code.core.viewer_link",
}


def expose_shared_modules() -> None:
    """Make each shared module importable under its top-level name, as in a function's asset."""
    for name, dotted in SHARED_MODULES.items():
        module = importlib.import_module(dotted)
        existing = sys.modules.get(name)
        if existing is not None and existing is not module:
            raise ImportError(
                f"a module named {name!r} is already imported from {getattr(existing, '__file__', '?')}: the "
                f"functions' shared module {dotted} needs that name; rename the other module"
            )
        sys.modules[name] = module


def expose_runtime_modules(package: str, names: tuple[str, ...]) -> None:
    """Give modules of a runtime folder their top-level names too: a handler imports its sibling (``seg_reader``)
    as Lambda loads it, from the asset's top level; mypy reads those names through function_shared/stubs/."""
    for name in names:
        module = importlib.import_module(f"{package}.{name}")
        existing = sys.modules.get(name)
        if existing is not None and existing is not module:
            raise ImportError(f"a module named {name!r} is already imported from {getattr(existing, '__file__', '?')}")
        sys.modules[name] = module
