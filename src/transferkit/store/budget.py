"""Memory budgets: parse "2GB"-style sizes and turn a budget into rows per chunk."""

from __future__ import annotations

import re

from ..errors import TransferkitError

_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "KIB": 2**10, "M": 1e6, "MB": 1e6, "MIB": 2**20,
          "G": 1e9, "GB": 1e9, "GIB": 2**30, "T": 1e12, "TB": 1e12, "TIB": 2**40}


def parse_size(text: str | int | float) -> int:
    """``"2GB"`` -> 2_000_000_000, ``"512MiB"`` -> 536_870_912, ``1000`` -> 1000 (bytes)."""
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise TransferkitError(f"cannot read {text!r} as a size; write e.g. 2GB, 512MiB or 1000000")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def rows_for_budget(budget_bytes: int, row_bytes: int, copies: int = 4, minimum: int = 64) -> int:
    """Rows per chunk so that ``copies`` chunk-sized buffers of ``row_bytes`` rows fit in the budget."""
    return max(minimum, int(budget_bytes // max(1, row_bytes * copies)))
