"""The Typer app, its consoles, and the one-red-line error handling shared by every command.

Errors a user can fix print as one red line and exit with status 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import functools

import typer
from rich.console import Console

from ..errors import TransferkitError
from . import _help  # noqa: F401  (help-text conventions: no <bool> on flags, plain DATA / MODEL)

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


def friendly(fn):
    """Turn TransferkitError (and a few OS errors) into one red line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (TransferkitError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            if _state["debug"]:
                raise
            msg = str(exc) if isinstance(exc, TransferkitError) else f"{exc.filename}: {exc.strerror}"
            err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"transferkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
):
    _state["debug"] = debug



def print_skipped(skipped, limit: int = 20):
    if not skipped:
        return
    console.print(f"[yellow]skipped {len(skipped)} unreadable file(s):[/]")
    for path, reason in skipped[:limit]:
        console.print(f"  {path}: {reason}", highlight=False)
    if len(skipped) > limit:
        console.print(f"  … and {len(skipped) - limit} more (see `transferkit inspect`)")




def main() -> None:
    app()

