"""Lazy package namespaces: names and submodules imported on first use (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_namespace(package: str, namespace: dict[str, Any], exports: dict[str, str],
                   submodules: Iterable[str] = ()
                   ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's `(__getattr__, __dir__)`: `exports` maps a public name to the submodule
    that defines it, `submodules` are importable by attribute; a value is cached in the
    package's `namespace` (its `globals()`) once imported."""
    submodules = tuple(submodules)

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        # The package's own names only: its exports, its submodules (also those imported
        # by other means), `__version__` and the module dunders; not the helpers the
        # package module itself imports (`TYPE_CHECKING`, `annotations`, this function).
        own = {name for name, value in namespace.items()
               if (name.startswith("__") and name.endswith("__"))
               or getattr(value, "__name__", "") == f"{package}.{name}"}
        return sorted({*own, *exports, *submodules})

    return __getattr__, __dir__
