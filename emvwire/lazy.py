"""Names of a package imported from its modules on first use (PEP 562, a module's
``__getattr__``), so that importing the package costs nothing until a name is used.

``__getattr__ = lazy_names(__name__, {"Name": "module", ...})`` in a package's
``__init__``: ``package.Name`` imports ``package.module`` then, and keeps the value in
the package's namespace (the next use is a plain attribute). Type checkers see the
names through imports under ``if TYPE_CHECKING:`` beside it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package`` for ``names`` (name -> its module's name
    within the package; module docstring)."""
    namespace = sys.modules[package].__dict__

    def attribute(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return attribute
