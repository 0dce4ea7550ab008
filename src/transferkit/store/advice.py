"""Errors that advise an option of ``extract``, keeping what went wrong as data; the front door words the options.

The store does not know the command line. Such an error carries its facts as attributes (which setting
differs, the file's value and this run's, ...) and a sentence whose options are placeholders:
``{o[overwrite!]}`` (a switch), ``{o[dtype=float32]}`` (an option with a value), ``{o[seed]}`` (the
option itself). ``str(exc)`` words them as the keyword arguments of :func:`transferkit.extract`
(``overwrite=True``); the CLI words them as flags (``--overwrite``) with :meth:`AdvisedError.render`.
"""

from __future__ import annotations

from typing import Callable

from ..errors import TransferkitError

# Settings that are not options of their own: both front doors describe them alike.
DESCRIBED = {
    "preprocess": "the model's preprocessing",
    "split_source": "split layout (split folders, a split column, or neither)",
}
# Python names where they differ from the setting's key.
PYTHON_NAMES = {"weights_sha256": "weights", "calibration": "precision='int8' (its calibration images)"}


def python_word(option: str) -> str:
    """``overwrite!`` -> ``overwrite=True``; ``dtype=float32`` -> ``dtype='float32'``; ``seed`` -> ``seed``."""
    if option in DESCRIBED:
        return DESCRIBED[option]
    if option.endswith("!"):
        return f"{option[:-1]}=True"
    name, eq, value = option.partition("=")
    name = PYTHON_NAMES.get(name, name)
    return f"{name}={value!r}" if eq else name


class _Words:
    def __init__(self, word: Callable[[str], str]):
        self.word = word

    def __getitem__(self, option: str) -> str:
        return self.word(option)


class AdvisedError(TransferkitError):
    """``template`` names its facts as ``{fact}`` (given as keywords, kept as attributes) and its options as
    ``{o[...]}`` (see the module docstring)."""

    def __init__(self, template: str, **facts):
        self.template = template
        self.facts = facts
        self.__dict__.update(facts)
        super().__init__(template)

    def render(self, word: Callable[[str], str]) -> str:
        """The message with each option worded by ``word`` (e.g. as a command-line flag)."""
        return self.template.format(o=_Words(word), **self.facts)

    def __str__(self) -> str:
        return self.render(python_word)

    def __reduce__(self):  # facts survive a trip between processes
        return _rebuild, (type(self), self.template, self.facts)


def _rebuild(cls, template: str, facts: dict) -> AdvisedError:
    return cls(template, **facts)
