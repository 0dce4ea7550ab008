"""Lazy re-exports: ``import transferkit`` (and so every CLI verb) stays cheap.

The public names live in modules that pull in PyTorch, scikit-learn or timm (seconds and hundreds of
megabytes). A package that re-exports them eagerly makes ``transferkit inspect`` or an extraction that
only needs ONNX Runtime pay for all of them; :func:`lazy_exports` imports each module on first use.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for a module whose ``exports`` map a public name to the module
    (relative to ``package``) that defines it."""

    def __getattr__(name: str):
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where, package), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
