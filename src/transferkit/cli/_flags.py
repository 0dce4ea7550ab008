"""The CLI's words for what the lower layers report as data: the options their errors advise (see
errors.AdvisedError) as flags, and the `transferkit extract`
command line that resumes an incomplete file. The lower layers raise errors with data and placeholders;
only here do they become flags."""

from __future__ import annotations

import shlex

from ..errors import AdvisedError, IncompleteFileError

# Flags that are not simply "--" + the setting's name with dashes.
FLAGS = {"output": "-o", "weights_sha256": "--weights", "calibration": "--precision int8 (its calibration images)"}


def flag(option: str) -> str:
    """``overwrite!`` -> ``--overwrite``; ``dtype=float32`` -> ``--dtype float32``; ``test_size`` -> ``--test-size``."""
    from ..errors import DESCRIBED

    if option in DESCRIBED:
        return DESCRIBED[option]
    name, eq, value = option.rstrip("!").partition("=")
    word = FLAGS.get(name, "--" + name.replace("_", "-"))
    return f"{word} {value}" if eq else word


def worded(exc: BaseException) -> str:
    """The message of ``exc`` as the command line should print it."""
    if isinstance(exc, IncompleteFileError):
        return exc.worded(extract_command(exc.data, exc.path, exc.request, "--resume"))
    return exc.render(flag) if isinstance(exc, AdvisedError) else str(exc)


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
