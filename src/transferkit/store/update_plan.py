"""What ``update`` (and a resume of a file whose dataset changed) does to an existing file: the new plan,
and the rows of the old file that carry over into it.

Plan = rows of files still present + their skip records (done), then pending files of an unfinished
plan (keeping their planned split), then new files (a fresh stratified split, or the dataset's own).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.split import STRATIFIED, stratified_split
from . import schema, working
from .reader import FeatureFile, _decode_str
from .working import Plan, WorkingFile

WINDOW_BYTES = 64 << 20  # kept rows are copied in windows of about this size


@dataclass
class UpdatePlan:
    plan: Plan
    keep: np.ndarray  # bool per row of the old file: still in the dataset
    skipped: list[tuple[str, str]]  # skip records of files still in the dataset
    new: list[str] = field(default_factory=list)  # files with no row, record or pending place yet
    gone: list[str] = field(default_factory=list)  # files no longer there: rows, skip records, pending inputs

    @property
    def n_removed(self) -> int:
        return len(self.gone)

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    @property
    def n_done(self) -> int:
        """Plan inputs already done: the kept rows and skip records."""
        return self.n_kept + len(self.skipped)

    @property
    def changed(self) -> bool:
        return bool(self.new) or bool(self.n_removed)


def plan_update(ff: FeatureFile, current: list[tuple[str, str]], class_names: list[str], split_now: np.ndarray,
                split_source: str, test_size: float, seed: int) -> UpdatePlan:
    """The plan that brings the file ``ff`` to the dataset ``current`` ((path, class) per sample, whose
    split as the dataset lists it is ``split_now``)."""
    names = ff.label_names
    row_paths = ff.paths
    row_pairs = list(zip(row_paths, (names[i] for i in ff.labels)))
    now = {pair: i for i, pair in enumerate(current)}
    now_paths = dict(current)
    keep = np.array([pair in now for pair in row_pairs], dtype=bool)
    skipped = [(p, r) for p, r in ff.skipped if p in now_paths]
    pending = _pending(ff)
    pending_kept = [(p, c, s) for p, c, s in pending if (p, c) in now]
    gone = ([p for (p, _), k in zip(row_pairs, keep) if not k] + [p for p, _ in ff.skipped if p not in now_paths]
            + [p for p, c, _ in pending if (p, c) not in now])
    covered = {pair for pair, k in zip(row_pairs, keep) if k}
    covered |= {(p, now_paths[p]) for p, _ in skipped}
    covered |= {(p, c) for p, c, _ in pending_kept}
    new = [pair for pair in current if pair not in covered]

    index = {name: i for i, name in enumerate(class_names)}
    new_labels = np.array([index[c] for _, c in new], dtype=np.int32)
    if not new:
        new_split = np.zeros(0, np.uint8)
    elif split_source != STRATIFIED:  # the dataset says each file's split
        new_split = split_now[[now[pair] for pair in new]].astype(np.uint8)
    else:
        new_split = stratified_split(new_labels, test_size, seed)
    kept_rows = np.flatnonzero(keep)
    paths = [row_paths[i] for i in kept_rows] + [p for p, _ in skipped] + [p for p, _, _ in pending_kept]
    labels = ([index[row_pairs[i][1]] for i in kept_rows] + [index[now_paths[p]] for p, _ in skipped]
              + [index[c] for _, c, _ in pending_kept] + list(new_labels))
    split = list(ff.split[kept_rows]) + [0] * len(skipped) + [s for _, _, s in pending_kept] + list(new_split)
    plan = Plan(paths + [p for p, _ in new], np.asarray(labels, np.int32), np.asarray(split, np.uint8),
                list(class_names))
    return UpdatePlan(plan, keep, skipped, [p for p, _ in new], gone)


def _pending(ff: FeatureFile) -> list[tuple[str, str, int]]:
    """(path, class, split) of the inputs an unfinished plan has not reached."""
    if ff.progress is None:
        return []
    g = ff.h5[working.GROUP]
    start = ff.progress["inputs_done"]
    names = ff.label_names
    return [(p, names[lab], int(s)) for p, lab, s in zip(
        _decode_str(g[working.PLAN_PATHS][start:]), g[working.PLAN_LABELS][start:], g[working.PLAN_SPLIT][start:])]


def copy_kept(old_path, wf: WorkingFile, update: UpdatePlan) -> None:
    """Copy the kept rows of the old file at ``old_path`` into the new working file, then mark the kept
    skip records done. One window at a time: memory stays bounded."""
    window = max(1, WINDOW_BYTES // max(1, wf.feature_dim * wf.dtype.itemsize))
    keep = update.keep
    out = 0
    with FeatureFile(old_path) as old:  # still the old file: the new one is not in place yet
        # a finished multi-layer file keeps each layer in its own dataset: read them side by side
        every = [info["name"] for info in old.layers]
        _, read = old._feature_source(every if old.progress is None and len(every) > 1 else None)
        for lo in range(0, len(keep), window):
            hi = min(len(keep), lo + window)
            sel = np.flatnonzero(keep[lo:hi])
            if len(sel):
                wf.add(range(out, out + len(sel)), read(lo, hi)[sel])
                wf.commit()
                out += len(sel)
    n_kept = update.n_kept
    wf.add([], None, failures=[(n_kept + i, r) for i, (_, r) in enumerate(update.skipped)], next_input=update.n_done)


def file_compression(ff: FeatureFile) -> str | None:
    """The compression the file's extraction was started with (or its finished features have)."""
    if ff.progress is not None:
        value = ff.h5[working.GROUP].attrs.get("compression", "none")
        return value.decode() if isinstance(value, bytes) else str(value)
    return ff.h5[schema.FEATURES].compression or "none"
