"""The Typer app, its consoles, and the one-red-line error handling shared by every command.

Errors a user can fix print as one red line and exit with status 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import functools
import re

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import TransferkitError, first_line
from . import _help  # noqa: F401  (help-text conventions: no <bool> on flags, plain DATA / MODEL)
from ._flags import worded

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Transfer learning by feature extraction: images -> pretrained backbone -> HDF5 features -> classifier.",
)
# soft_wrap: a long message is one line that the terminal wraps, never a path broken by an inserted newline
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def esc(value, lines: bool = False) -> str:
    """``value`` as text Rich prints literally: file, folder, class and label names come from users and
    may hold ``[...]``, which Rich would otherwise read as markup (and fail on, or hide), and control
    characters (a newline, a terminal escape sequence), shown here as ``\\xNN``. ``lines``: a text
    of several lines (a report), escaped line by line."""
    if lines:
        return "\n".join(esc(line) for line in str(value).split("\n"))
    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value)))


def friendly(fn):
    """Turn TransferkitError (and a few OS errors) into one red line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (TransferkitError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            if _state["debug"]:
                raise
            msg = worded(exc) if isinstance(exc, TransferkitError) else f"{exc.filename}: {exc.strerror}"
            err.print(f"[bold red]error:[/] {esc(msg)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None
        except OSError as exc:  # a file the user named: unreadable, a full disk, ...
            if _state["debug"]:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(
                f"[bold red]error:[/] {esc(where)}{esc(exc.strerror or first_line(exc))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
        except Exception as exc:  # a bug: still one line, the traceback with --debug
            if _state["debug"] or type(exc).__module__.startswith(("typer", "click")):
                raise  # typer's own ways out: exit codes, usage errors
            err.print(
                f"[bold red]error:[/] unexpected {type(exc).__name__}: {esc(first_line(exc))} "
                "(run with --debug for the traceback, and please report it)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"transferkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
):
    _state["debug"] = debug


def print_skipped(skipped, limit: int = 20):
    if not skipped:
        return
    console.print(f"[yellow]skipped {len(skipped)} unreadable file(s):[/]")
    for path, reason in skipped[:limit]:
        console.print(f"  {esc(path)}: {esc(reason)}", highlight=False)
    if len(skipped) > limit:
        console.print(f"  … and {len(skipped) - limit} more (see `transferkit inspect`)")


def print_ignored(ignored, limit: int = 20):
    """Files and folders discovery passed over ("path: why"): links seen before, names not UTF-8, ..."""
    if not ignored:
        return
    console.print(f"[yellow]passed over {len(ignored)} file(s) or folder(s):[/]")
    for line in ignored[:limit]:
        console.print(f"  {esc(line)}", highlight=False)
    if len(ignored) > limit:
        console.print(f"  … and {len(ignored) - limit} more")


def main() -> None:
    app()
