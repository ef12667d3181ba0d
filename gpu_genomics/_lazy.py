"""Package attributes imported on first use (PEP 562), so that importing a package is cheap.

A package declares its public names as ``{name: (module, attribute)}`` (``attribute`` None:
the module itself) and its lazily imported submodules, and binds the module-level
``__getattr__`` and ``__dir__`` this returns; each value is cached in the package's namespace
after its first use. Nothing but :mod:`importlib` is imported here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any


def lazy_attributes(
    package: str, names: dict[str, tuple[str, str | None]], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` (its ``__name__``).

    ``names``: each public name -> (its module relative to ``package``, its name there or None
    for the module); ``submodules``: modules reachable as attributes, imported on first use.
    """
    modules = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in names:
            module_name, attribute = names[name]
            module = importlib.import_module(f".{module_name}", package)
            value = module if attribute is None else getattr(module, attribute)
        elif name in modules:
            value = importlib.import_module(f".{name}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        vars(sys.modules[package])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names, *modules})

    return __getattr__, __dir__
