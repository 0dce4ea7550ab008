"""Errors a user can act on. The CLI prints them as one red line (``--debug`` shows the traceback)."""


class TransferkitError(Exception):
    """A problem with the user's input or files, described in one line that names the file."""


class IncompleteFileError(TransferkitError):
    """A feature file whose extraction did not finish."""
