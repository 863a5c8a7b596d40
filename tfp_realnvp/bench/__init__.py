"""Benchmarks anyone can rerun: `quality` (held-out NLL against the baselines a data
scientist reaches for first) and `speed` (training and serving throughput; its parts in
`subjects`, `timing`, `throughput`, `profile`, `time_to_quality`, `scaling`, `report`,
`options`), `bigtable` (a million rows end to end), `peers` (FlowJAX's flows for `quality`:
optional, JAX only inside its fit).

The submodules are imported on first use, like the package's own names.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_SUBMODULES = ("bigtable", "images", "maf", "notebook", "options", "peers", "profile", "quality",
               "report", "scaling", "speed", "streamed", "subjects", "throughput",
               "time_to_quality", "timing")


def __getattr__(name: str) -> ModuleType:
    if name not in _SUBMODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{name}")
    globals()[name] = module
    return module
