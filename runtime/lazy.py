"""Lazy attributes for packages: a name is imported from its submodule on first access.

A package's ``__init__`` lists its public names and the submodule that defines each, so that
importing the package costs nothing and ``dir(package)`` / ``help(package)`` still show every name.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def attach(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    names: public name -> submodule (relative to ``package``, e.g. ``"tracker"``) that defines it.
    """

    def __getattr__(name: str) -> Any:
        try:
            module = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        globals_of(package)[name] = value  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals_of(package)) | set(names))

    return __getattr__, __dir__, sorted(names)


def globals_of(package: str) -> dict[str, Any]:
    """The namespace of an imported package."""
    import sys

    return vars(sys.modules[package])
