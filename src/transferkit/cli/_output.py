"""Tables and headings that never cut or wrap an identifier (a model, layer, path or class name).

A Rich table squeezes its columns into the console width, folding or cutting long cells with "…";
piped into ``grep`` or ``cut``, or in an 80-column terminal, that breaks exactly the names a user has
to copy into the next command. :func:`print_table` therefore draws the Rich table only on a terminal
wide enough for every cell, and otherwise prints plain rows: one line per row, columns aligned with
two spaces, nothing shortened (a line longer than the terminal wraps there, in one piece).

Use it wherever a command would ``console.print(table)``: build the ``rich.table.Table`` as usual
(cells as plain ``str`` with no markup, or ``rich.text.Text`` for styled ones) and call
``print_table(console, table)``.
"""

from __future__ import annotations

import contextlib

from rich.console import Console
from rich.measure import Measurement
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

_UNBOUNDED = 1_000_000


def table_fits(console: Console, table: Table) -> bool:
    """True when ``console`` is a terminal and ``table`` fits its width without folding a cell."""
    if not console.is_terminal:
        return False
    natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
    return natural <= console.width


def _plain(console: Console, cell) -> str:
    if isinstance(cell, Text):
        text = cell.plain
    elif isinstance(cell, str):
        text = console.render_str(cell).plain  # drops markup such as "[green]yes[/]"
    else:
        text = str(cell)
    return " ".join(text.split("\n"))


def plain_rows(console: Console, table: Table) -> list[str]:
    """The table as aligned text lines: title, header, rows; no cell shortened."""
    columns = table.columns
    grid = [[_plain(console, cell) for cell in col.cells] for col in columns]
    n_rows = max((len(cells) for cells in grid), default=0)
    rows = [[grid[c][r] if r < len(grid[c]) else "" for c in range(len(columns))] for r in range(n_rows)]
    if table.show_header:
        rows.insert(0, [_plain(console, col.header) for col in columns])
    widths = [max((len(row[c]) for row in rows), default=0) for c in range(len(columns))]
    lines = [_plain(console, table.title)] if table.title else []
    for row in rows:
        cells = [
            cell.rjust(w) if col.justify == "right" else cell.ljust(w) for cell, w, col in zip(row, widths, columns)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def print_table(console: Console, table: Table) -> None:
    """Draw ``table`` when it fits a terminal, else print it as plain rows (see the module docstring)."""
    if table_fits(console, table):
        console.print(table, soft_wrap=False)
        return
    for line in plain_rows(console, table):
        console.print(Text(line), soft_wrap=True)


def print_heading(console: Console, title: str) -> None:
    """A section heading: a rule on a terminal wide enough for the whole title, else a plain line."""
    if console.is_terminal and len(title) + 8 <= console.width:
        console.print(Rule(Text(title)))
    else:
        console.print(Text(f"== {title} ==", style="bold"), soft_wrap=True)


STDOUT = "-"


def _jsonable(value):
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def write_text(path, text: str) -> None:
    """Write ``text`` to standard output when ``path`` is ``-``, else to the file ``path`` whole or not at
    all (a temporary file renamed into place), like every other output."""
    import sys

    from ..store.fsio import atomic_write_text

    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(path, text)


def write_json(path, doc) -> None:
    """Write ``doc`` as JSON to the file ``path``, or to standard output when ``path`` is ``-``."""
    import json

    write_text(path, json.dumps(doc, indent=2, ensure_ascii=False, default=_jsonable) + "\n")


@contextlib.contextmanager
def messages_to_stderr(*paths):
    """While a command writes data to standard output (an option given ``-``), its messages, tables and
    progress go to standard error, so ``transferkit train F -o M --json - | jq`` gets JSON only."""
    import sys

    if not any(str(p) == STDOUT for p in paths if p is not None):
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield
