"""Errors a user can act on. The CLI prints them as one red line (``--debug`` shows the traceback)."""


class TransferkitError(Exception):
    """A problem with the user's input or files, described in one line that names the file."""


class SettingError(TransferkitError):
    """A problem that another value of one setting fixes: ``setting`` is its Python argument name and
    ``value`` the value to try. The text says ``use cv=2``; the CLI words it as the flag, ``use --cv 2``."""

    def __init__(self, problem: str, setting: str, value):
        self.problem, self.setting, self.value = problem, setting, value
        super().__init__(f"{problem}; use {setting}={value!r}")

    def render(self, word) -> str:
        """The message with the setting worded by ``word`` (as in store/advice.py: ``"cv=2"`` -> ``--cv 2``)."""
        return f"{self.problem}; use {word(f'{self.setting}={self.value}')}"


class SettingValueError(TransferkitError):
    """A value of one setting that cannot work: ``setting`` (its Python argument name), ``value`` as given
    and the ``problem``. The text reads ``pool='gem': ...``; the CLI words it as ``--pool gem: ...``."""

    def __init__(self, setting: str, value, problem: str):
        self.setting, self.value, self.problem = setting, value, problem
        super().__init__(f"{setting}={value!r}: {problem}")

    def render(self, word) -> str:
        """The message with the setting worded by ``word`` (``"pool=gem"`` -> ``--pool gem``)."""
        return f"{word(f'{self.setting}={self.value}')}: {self.problem}"


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
