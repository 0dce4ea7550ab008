"""How an extraction meets its output file, decided before the dataset is listed or a model loaded: a new
file, an ``overwrite``, a ``resume`` of an interrupted run, or an ``update`` to the dataset as it is now.
An existing file is never replaced without ``overwrite``; the refusal says what the file is."""

from __future__ import annotations

from pathlib import Path

from ..errors import TransferkitError
from . import schema
from .advice import AdvisedError
from .reader import FeatureFile

MODES = ("new", "overwrite", "resume", "update")


class OutputExistsError(AdvisedError):
    """The output exists and no mode says what to do with it: ``state`` is complete, incomplete or unreadable."""


class OptionError(AdvisedError):
    """Options that cannot be combined, or an option's value is not one of ``allowed``."""


def resolve_mode(
    output: Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    update: bool = False,
    dtype: str | None = None,
    compression: str | None = None,
) -> str:
    """One of :data:`MODES`; refuses to touch an existing file without a mode."""
    check_storage_options(dtype, compression)
    if overwrite and (resume or update):
        raise OptionError("{o[overwrite!]} starts over; it cannot be combined with {o[resume!]} or {o[update!]}")
    if output.is_dir():
        raise OptionError("{path}: is a folder; {o[output]} names the feature file to write", path=output)
    if not output.exists():
        return "new"  # resume/update of a file that is not there yet: start it
    if overwrite:
        return "overwrite"
    if update:
        return "update"
    if resume:
        return "resume"
    raise existing_error(output)


def check_storage_options(dtype: str | None, compression: str | None) -> None:
    for name, value, allowed in (("dtype", dtype, schema.DTYPES), ("compression", compression, schema.COMPRESSIONS)):
        if value not in (None, *allowed):
            raise OptionError("{o[%s]} must be one of %s, got {got!r}" % (name, ", ".join(allowed)), option=name,
                              got=value, allowed=tuple(allowed))


def existing_error(path: Path) -> OutputExistsError:
    """What the existing file at ``path`` is, and the modes that would handle it."""
    try:
        with FeatureFile(path) as ff:
            if ff.complete:
                return OutputExistsError(
                    "{path}: already exists (a complete feature file, {rows} rows); pass {o[update!]} to add new "
                    "images and drop removed ones, or {o[overwrite!]} to replace it",
                    path=path, state="complete", rows=ff.n_rows)
            p = ff.progress
            done = f"{p['inputs_done']} of {p['inputs_total']} images done" if p else f"{ff.n_rows} rows"
            return OutputExistsError(
                "{path}: already exists (an incomplete feature file, {done}); pass {o[resume!]} to finish it, or "
                "{o[overwrite!]} to start over",
                path=path, state="incomplete", rows=ff.n_rows, done=done)
    except TransferkitError:
        return OutputExistsError(
            "{path}: already exists (not a readable transferkit feature file); pass {o[overwrite!]} to replace it, "
            "or choose another {o[output]}",
            path=path, state="unreadable")
