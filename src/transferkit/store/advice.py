"""Errors that advise an option of ``extract``: :class:`transferkit.errors.AdvisedError` (which lives with
the other error types so that every layer can raise one), re-exported for the store's modules."""

from ..errors import DESCRIBED, PYTHON_NAMES, AdvisedError, python_word  # noqa: F401
