"""How the ``transferkit`` command spells what the lower layers report as data: the errors that carry
settings by Python argument name are worded here with the command's flags."""

from __future__ import annotations

import shlex

from ..errors import IncompleteFileError, SettingError, SettingValueError


def flag(setting: str) -> str:
    """The command's flag for a Python argument: ``test_size`` -> ``--test-size``."""
    return "--" + setting.replace("_", "-")


def extract_command(data: str, output, request: dict, *extra: str) -> str:
    """The ``transferkit extract`` command line for ``request`` (settings by Python argument name, as a
    feature file records them), followed by ``extra`` flags."""
    words = ["transferkit", "extract", str(data), "-o", str(output)]
    for key, value in request.items():
        if key == "layer":
            for name in [value] if isinstance(value, str) else value:
                words += ["--layer", name]
        elif key == "pool":
            pools = [value] if isinstance(value, str) else list(dict.fromkeys(value))
            words += ["--pool", pools[0]] if len(pools) == 1 else []
        elif key == "image_size":
            words += ["--image-size", str(value) if isinstance(value, int) else "x".join(map(str, value))]
        elif key == "crop":
            words += [] if value else ["--no-crop"]
        else:
            words += [flag(key), str(value)]
    return shlex.join([*words, *extra])


def resume_command(ff) -> str:
    """The command that finishes the incomplete feature file ``ff``: its settings, then ``--resume``."""
    data, request = ff.extraction_request()
    return extract_command(data, ff.path, request, "--resume")


def cli_message(exc: Exception) -> str:
    """``exc``'s message as the command line user should read it."""
    if isinstance(exc, IncompleteFileError):
        return exc.worded(extract_command(exc.data, exc.path, exc.request, "--resume"))
    if isinstance(exc, SettingValueError):
        return f"{flag(exc.setting)} {exc.value}: {exc.problem}"
    if isinstance(exc, SettingError):
        return f"{exc.problem}; use {flag(exc.setting)} {exc.value}"
    return str(exc)
