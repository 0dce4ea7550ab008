"""Errors a user can act on. The CLI prints them as one red line (``--debug`` shows the traceback)."""

from __future__ import annotations

from typing import Callable


class TransferkitError(Exception):
    """A problem with the user's input or files, described in one line that names the file."""


class IncompleteFileError(TransferkitError):
    """A feature file whose extraction did not finish. Carries what a message needs to say how to finish
    it: ``path``, ``done`` (how far it got), ``action`` (what the caller wanted to do with it), ``data``
    (the dataset it was started on) and ``request`` (the settings it was started with, by Python argument
    name). The text names the Python call; the CLI words the same data as a command line."""

    def __init__(self, path, done: str, action: str, data: str, request: dict):
        self.path, self.done, self.action, self.data, self.request = path, done, action, data, request
        super().__init__(self.worded(self.python_call()))

    def python_call(self) -> str:
        args = ", ".join([repr(self.data), repr(str(self.path)), *(f"{k}={v!r}" for k, v in self.request.items())])
        return f"transferkit.extract({args}, resume=True)"

    def worded(self, how_to_resume: str) -> str:
        return (
            f"{self.path}: incomplete feature file ({self.done}); its extraction did not finish. "
            f"Resume it with `{how_to_resume}` before you {self.action} it"
        )


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``str(exc)`` (at most ``limit`` characters), or the exception's type name."""
    text = (str(exc).strip().splitlines() or [""])[0][:limit]
    return text or type(exc).__name__


# -- errors that advise a setting ------------------------------------------------------------------
# The lower layers do not know the command line. Such an error carries its facts as attributes (which
# setting differs, the file's value and this run's, ...) and a sentence whose options are placeholders:
# ``{o[overwrite!]}`` (a switch), ``{o[dtype=float32]}`` (an option with a value), ``{o[seed]}`` (the
# option itself); ``{o[pool=@pool]}`` takes the value from the fact ``pool``. ``str(exc)`` words them as
# Python keyword arguments (``overwrite=True``); the CLI words them as flags (``--overwrite``,
# cli/_flags.py) with :meth:`AdvisedError.render`.

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
    number = value.lstrip("-").replace(".", "", 1).isdigit()
    return (f"{name}={value}" if number else f"{name}={value!r}") if eq else name


class _Words:
    def __init__(self, word: Callable[[str], str], facts: dict):
        self.word, self.facts = word, facts

    def __getitem__(self, option: str) -> str:
        name, eq, value = option.partition("=")
        if eq and value.startswith("@"):  # ``{o[pool=@pool]}``: the value is the fact ``pool`` (a user's text)
            option = f"{name}={self.facts[value[1:]]}"
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
        return self.template.format(o=_Words(word, self.facts), **self.facts)

    def __str__(self) -> str:
        return self.render(python_word)

    def __reduce__(self):  # facts survive a trip between processes
        return _rebuild, (type(self), self.template, self.facts)


def _rebuild(cls, template: str, facts: dict) -> AdvisedError:
    return cls(template, **facts)
