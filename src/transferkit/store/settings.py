"""The one settings check of an extraction: resuming or updating a file with settings other than the ones
it was made with is refused, naming the first difference (the same check whether the batches are
computed here or on Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.split import STRATIFIED
from .advice import AdvisedError

# Settings that change what the rows contain (file attributes), in the order they are checked.
GUARDED = ("model", "weights_sha256", "layer", "pool", "preprocess", "engine", "batch_size", "split_source",
           "test_size", "seed", "precision", "calibration")


class SettingsMismatchError(AdvisedError):
    """Resuming or updating with settings other than the file's: ``key``, ``old`` (the file's), ``new``."""


def _normal(value):
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _same(old, new) -> bool:
    if isinstance(old, float) or isinstance(new, float):
        return old is not None and new is not None and float(old) == float(new)
    return old == new


def check_settings(path: Path, file_attrs: dict, attrs: dict, action: str) -> None:
    """Refuse (naming the first difference) unless ``attrs`` match the file's for every GUARDED key."""
    for key in GUARDED:
        if key not in attrs and key not in file_attrs:
            continue
        old, new = _normal(file_attrs.get(key)), _normal(attrs.get(key))
        if key == "split_source":  # files from before it was recorded were split at random
            old, new = old or STRATIFIED, new or STRATIFIED
        if _same(old, new):
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            diffs = [f"{k} {old.get(k)!r} vs {new.get(k)!r}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k)]
            detail = f"its {key} differs ({'; '.join(diffs)}, file vs this run)"
        else:
            detail = f"it was extracted with {key} {old!r}, this run asks for {new!r}"
        raise SettingsMismatchError(
            "{path}: cannot {action}: {detail}; rerun with the file's {o[%s]} to {action} it, or pass "
            "{o[overwrite!]} to start over" % key,
            path=path, action=action, key=key, old=old, new=new, detail=detail,
        )


def check_dtype(path: Path, file_dtype: str, dtype: str | None, action: str) -> None:
    """A resumed or updated file keeps the dtype it was started with."""
    if dtype is not None and dtype != file_dtype:
        raise SettingsMismatchError(
            "{path}: cannot {action}: its features are stored as {old}, this run asks for {new}; rerun with "
            "{o[dtype=%s]}, or pass {o[overwrite!]} to start over" % file_dtype,
            path=path, action=action, key="dtype", old=file_dtype, new=dtype,
        )
