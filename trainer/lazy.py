"""A package's names, looked up in its modules on first use (PEP 562).

``trainer.data``, ``trainer.loop`` and ``trainer.checkpoint`` name what importers have always
used (``from trainer.data import load_data``) without importing every module at once: importing
a light part (``trainer.loop.threads``, ``trainer.data.spec``) must not import torch, since the
window and the command line tame torch's thread variables before torch loads.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(
    package: str, where: dict[str, tuple[str, ...]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``, whose module ``m`` of ``where``
    defines the names ``where[m]``; ``namespace`` is the package's ``globals()``.

    A name is looked up each time, not copied into the package: a name patched where it is
    defined is seen through the package too."""
    module_of = {name: module for module, names in where.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted({*namespace, *module_of})

    return __getattr__, __dir__, sorted(n for n in module_of if not n.startswith("_"))
