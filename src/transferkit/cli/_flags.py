"""The CLI's words for the options that a lower layer's error advises (see store/advice.py): the flags of
`transferkit extract`. The store raises errors with data and placeholders; only here do they become flags."""

from __future__ import annotations

# Flags that are not simply "--" + the setting's name with dashes.
FLAGS = {"output": "-o", "weights_sha256": "--weights", "calibration": "--precision int8 (its calibration images)"}


def flag(option: str) -> str:
    """``overwrite!`` -> ``--overwrite``; ``dtype=float32`` -> ``--dtype float32``; ``test_size`` -> ``--test-size``."""
    from ..store.advice import DESCRIBED  # at error time only: the store is not imported at start-up

    if option in DESCRIBED:
        return DESCRIBED[option]
    name, eq, value = option.rstrip("!").partition("=")
    word = FLAGS.get(name, "--" + name.replace("_", "-"))
    return f"{word} {value}" if eq else word


def worded(exc: BaseException) -> str:
    """The message of ``exc`` as the command line should print it."""
    render = getattr(exc, "render", None)  # an AdvisedError (duck-typed: no store import here)
    return render(flag) if callable(render) else str(exc)
