"""Errors a user can act on. The CLI prints them as one red line (``--debug`` shows the traceback)."""


class TransferkitError(Exception):
    """A problem with the user's input or files, described in one line that names the file."""


class IncompleteFileError(TransferkitError):
    """A feature file whose extraction did not finish."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``str(exc)`` (at most ``limit`` characters), or the exception's type name."""
    text = (str(exc).splitlines() or [""])[0][:limit]
    return text or type(exc).__name__
