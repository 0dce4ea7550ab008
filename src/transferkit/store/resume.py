"""How an extraction meets its output file: a fresh start, the rest of an interrupted run
(``--resume``), only what changed in the dataset (``--update``), or a replacement (``--overwrite``).

* An existing file is never replaced without ``--overwrite``; the error says what the file is and
  which flag to use.
* Resuming or updating with different settings (model, weights, layer, pooling, preprocessing, engine,
  batch size, test split, dtype) is refused with a message naming the difference.
* ``--resume`` continues the plan stored in the working file and refuses if files were added to or
  removed from the dataset since; ``--update`` keeps the rows of files still present (and their
  split), drops rows of removed files, and extracts only the files that have no row yet.

:class:`ExtractionRun` is the context manager :func:`transferkit.extract` runs its batches in; on a
clean exit it commits the last rows and finishes the file (:mod:`.finalize`). The caller holds the
output lock (:mod:`.lock`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.split import STRATIFIED, stratified_split
from ..errors import TransferkitError
from . import fsio, isolate, schema, working
from .finalize import finalize, temp_path
from .reader import FeatureFile, _decode_str
from .testhook import checkpoint
from .working import Plan, WorkingFile, create_working_file

# Settings that change what the rows contain, with the option a user sets them by.
GUARDED = {
    "model": "--model",
    "weights_sha256": "--weights",
    "layer": "--layer",
    "pool": "--pool",
    "preprocess": "the model's preprocessing",
    "engine": "--engine",
    "batch_size": "--batch-size",
    "split_source": "split layout (split folders, a split column, or neither)",
    "test_size": "--test-size",
    "seed": "--seed",
    "precision": "--precision",
    "calibration": "--precision int8 (its calibration images)",
}


class SettingsMismatchError(TransferkitError):
    """Resuming or updating with settings other than the file's."""


class DatasetChangedError(TransferkitError):
    """Files were added to or removed from the dataset since the file was started."""


def resolve_mode(
    output: Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    update: bool = False,
    dtype: str | None = None,
    compression: str | None = None,
) -> str:
    """'new', 'overwrite', 'resume' or 'update'; refuses to touch an existing file without a flag.
    Cheap: called before the dataset is listed or a model loaded."""
    check_storage_options(dtype, compression)
    if overwrite and (resume or update):
        raise TransferkitError("--overwrite starts over; it cannot be combined with --resume or --update")
    if output.is_dir():
        raise TransferkitError(f"{output}: is a folder; -o names the feature file to write")
    if not output.exists():
        return "new"  # --resume/--update of a file that is not there yet: start it
    if overwrite:
        return "overwrite"
    if update:
        return "update"
    if resume:
        return "resume"
    what, advice = describe_existing(output)
    raise TransferkitError(f"{output}: already exists ({what}); {advice}")


def check_storage_options(dtype: str | None, compression: str | None) -> None:
    if dtype not in (None, *schema.DTYPES):
        raise TransferkitError(f"--dtype must be one of {', '.join(schema.DTYPES)}, got {dtype!r}")
    if compression not in (None, *schema.COMPRESSIONS):
        raise TransferkitError(f"--compression must be one of {', '.join(schema.COMPRESSIONS)}, got {compression!r}")


def describe_existing(path: Path) -> tuple[str, str]:
    try:
        with FeatureFile(path) as ff:
            if ff.complete:
                return (
                    f"a complete feature file, {ff.n_rows} rows",
                    "pass --update to add new images and drop removed ones, or --overwrite to replace it",
                )
            p = ff.progress
            done = f"{p['inputs_done']} of {p['inputs_total']} images done" if p else f"{ff.n_rows} rows"
            return f"an incomplete feature file, {done}", "pass --resume to finish it, or --overwrite to start over"
    except TransferkitError:
        return "not a readable transferkit feature file", "pass --overwrite to replace it, or choose another -o"


def _normal(value):
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_settings(path: Path, file_attrs: dict, attrs: dict, action: str) -> None:
    """Refuse (naming the first difference) unless ``attrs`` match the file's for every GUARDED key."""
    for key, flag in GUARDED.items():
        if key not in attrs and key not in file_attrs:
            continue
        old, new = _normal(file_attrs.get(key)), _normal(attrs.get(key))
        if key == "split_source":  # files from before it was recorded were split at random
            old, new = old or STRATIFIED, new or STRATIFIED
        if isinstance(old, float) or isinstance(new, float):
            same = old is not None and new is not None and float(old) == float(new)
        else:
            same = old == new
        if same:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            diffs = [
                f"{k} {old.get(k)!r} vs {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
            ]
            detail = f"its {key} differs ({'; '.join(diffs)}, file vs this run)"
        else:
            detail = f"it was extracted with {key} {old!r}, this run asks for {new!r}"
        raise SettingsMismatchError(
            f"{path}: cannot {action}: {detail}; rerun with the file's {flag} to {action} it, or pass --overwrite to "
            "start over"
        )


def _pairs_text(added: list, removed: list) -> str:
    parts = []
    if added:
        parts.append(f"{len(added)} added (e.g. {added[0]!r})")
    if removed:
        parts.append(f"{len(removed)} removed (e.g. {removed[0]!r})")
    return ", ".join(parts)


class ExtractionRun:
    """One extraction session against ``output`` (see the module docstring)."""

    def __init__(
        self,
        output: str | Path,
        *,
        mode: str,
        dataset,
        labels,
        split,
        attrs: dict,
        feature_dim: int,
        dtype: str | None = None,
        compression: str | None = None,
        buffer_rows: int = 1000,
        test_size: float = 0.25,
        seed: int = 42,
    ):
        check_storage_options(dtype, compression)
        self.output = Path(output)
        self.mode = mode
        self.dataset = dataset
        self.labels = np.asarray(labels)
        self.split = np.asarray(split)
        self.attrs = dict(attrs)
        self.feature_dim = int(feature_dim)
        self.dtype = dtype
        self.compression = compression
        self.buffer_rows = buffer_rows
        self.test_size = test_size
        self.seed = seed
        self.wf: WorkingFile | None = None
        self.status = "extracted"
        self.start = 0  # first plan input this session extracts
        self.todo: list[str] = []  # their paths, relative to the dataset root
        self.rows_before = 0
        self.n_added = self.n_removed = 0
        self.finish_attrs: dict = {}  # added to the finished file's attributes (see finalize)

    # -- start -----------------------------------------------------------------------------------
    def __enter__(self) -> "ExtractionRun":
        fsio.remove_quietly(temp_path(self.output))  # left by a run killed mid-create or mid-finish
        if self.mode in ("new", "overwrite"):
            plan = Plan(
                [s.path for s in self.dataset.samples],
                self.labels.astype(np.int32),
                self.split.astype(np.uint8),
                list(self.dataset.class_names),
            )
            self._create(plan, self.dtype or "float32", self.attrs)
            self.n_added = len(plan)
        else:
            self._open_existing()
        return self

    def _create(
        self, plan: Plan, dtype: str, attrs: dict, copy_done: Callable[[WorkingFile], None] | None = None
    ) -> None:
        tmp = temp_path(self.output)
        try:
            isolate.run(
                create_working_file,
                tmp,
                plan,
                feature_dim=self.feature_dim,
                dtype=dtype,
                attrs=attrs,
                compression=self.compression,
            )
            if copy_done is not None:
                wf = WorkingFile.open(tmp, buffer_rows=1 << 62)
                try:
                    copy_done(wf)
                    wf.commit()
                finally:
                    wf.close()
        except BaseException as exc:
            fsio.remove_quietly(tmp)
            raise self._translate(exc, "create") from None
        checkpoint("create")
        fsio.replace(tmp, self.output)
        self.wf = WorkingFile.open(self.output, buffer_rows=self.buffer_rows)
        self.start = self.wf.next_input
        self.rows_before = self.wf.progress.rows
        self.todo = _decode_str(self.wf.plan_paths[self.start :])

    def _open_existing(self) -> None:
        action = self.mode
        try:
            ff = FeatureFile(self.output)
        except TransferkitError as exc:
            raise TransferkitError(f"cannot {action}: {exc}; pass --overwrite to start over") from None
        with ff:
            check_settings(self.output, ff.attrs, self.attrs, action)
            file_dtype = str(ff.dtype)
            if self.dtype is not None and self.dtype != file_dtype:
                raise SettingsMismatchError(
                    f"{self.output}: cannot {action}: its features are stored as {file_dtype}, this run asks for "
                    f"{self.dtype}; rerun with --dtype {file_dtype}, or pass --overwrite to start over"
                )
            self.dtype = file_dtype
            current = [(s.path, self.dataset.class_names[s.label]) for s in self.dataset.samples]
            progress = ff.progress
            if progress is not None:
                g = ff.h5[working.GROUP]
                names = ff.label_names
                plan = list(zip(_decode_str(g[working.PLAN_PATHS][()]), (names[i] for i in g[working.PLAN_LABELS][()])))
                planned = set(plan)
                now = set(current)
                added = [p for p, c in current if (p, c) not in planned]
                removed = [p for p, c in plan if (p, c) not in now]
                if not added and not removed:
                    ff.close()
                    self._resume_in_place()
                    return
                if action == "resume":
                    raise DatasetChangedError(
                        f"{self.output}: cannot resume: the dataset changed since this extraction started "
                        f"({_pairs_text(added, removed)}); pass --update to finish with the files there are now"
                    )
            elif not ff.complete and action == "resume":
                raise TransferkitError(
                    f"{self.output}: cannot resume: this incomplete file was written without a resume record; "
                    f"pass --update to keep its {ff.n_rows} rows and extract the rest, or --overwrite to start over"
                )
            self._update(ff, current, action)

    def _resume_in_place(self) -> None:
        self.wf = WorkingFile.open(self.output, buffer_rows=self.buffer_rows)
        self.status = "resumed"
        self.start = self.wf.next_input
        self.rows_before = self.wf.progress.rows
        self.todo = _decode_str(self.wf.plan_paths[self.start :])

    def _update(self, ff: FeatureFile, current: list[tuple[str, str]], action: str) -> None:
        """Plan = rows of files still present + their skip records (done), then pending files of an
        unfinished plan (keeping their planned split), then new files (a fresh stratified split)."""
        names = ff.label_names
        row_paths = ff.paths
        row_pairs = list(zip(row_paths, (names[i] for i in ff.labels)))
        row_split = ff.split
        now = {pair: i for i, pair in enumerate(current)}
        now_paths = {p: c for p, c in current}
        keep = np.array([pair in now for pair in row_pairs], dtype=bool)
        skipped = [(p, r) for p, r in ff.skipped if p in now_paths]
        n_skips_gone = len(ff.skipped) - len(skipped)
        pending: list[tuple[str, str, int]] = []
        if ff.progress is not None:
            g = ff.h5[working.GROUP]
            start = ff.progress["inputs_done"]
            pending = [
                (p, names[lab], int(s))
                for p, lab, s in zip(
                    _decode_str(g[working.PLAN_PATHS][start:]),
                    g[working.PLAN_LABELS][start:],
                    g[working.PLAN_SPLIT][start:],
                )
            ]
        pending_kept = [(p, c, s) for p, c, s in pending if (p, c) in now]
        covered = {pair for pair, k in zip(row_pairs, keep) if k}
        covered |= {(p, now_paths[p]) for p, _ in skipped}
        covered |= {(p, c) for p, c, _ in pending_kept}
        new = [pair for pair in current if pair not in covered]
        self.n_added = len(new)
        self.n_removed = int((~keep).sum()) + n_skips_gone + (len(pending) - len(pending_kept))
        if action == "resume" and (new or self.n_removed):
            gone = [p for (p, _), k in zip(row_pairs, keep) if not k] + [p for p, _ in ff.skipped if p not in now_paths]
            raise DatasetChangedError(
                f"{self.output}: is complete, but the dataset changed since it was extracted "
                f"({_pairs_text([p for p, _ in new], gone)}); pass --update to extract only the new files and drop "
                "removed ones"
            )
        if ff.complete and not new and not self.n_removed:
            self.status = "up to date"
            self.rows_before = ff.n_rows
            return
        index = {name: i for i, name in enumerate(self.dataset.class_names)}
        new_labels = np.array([index[c] for _, c in new], dtype=np.int32)
        new_split = stratified_split(new_labels, self.test_size, self.seed) if len(new) else np.zeros(0, np.uint8)
        if len(new) and self.attrs.get("split_source", STRATIFIED) != STRATIFIED:  # the dataset says each file's split
            new_split = self.split[[now[pair] for pair in new]].astype(np.uint8)
        kept_rows = np.flatnonzero(keep)
        paths = (
            [row_paths[i] for i in kept_rows]
            + [p for p, _ in skipped]
            + [p for p, _, _ in pending_kept]
            + [p for p, _ in new]
        )
        labels = (
            [index[row_pairs[i][1]] for i in kept_rows]
            + [index[now_paths[p]] for p, _ in skipped]
            + [index[c] for _, c, _ in pending_kept]
            + list(new_labels)
        )
        split = list(row_split[kept_rows]) + [0] * len(skipped) + [s for _, _, s in pending_kept] + list(new_split)
        plan = Plan(paths, np.asarray(labels, np.int32), np.asarray(split, np.uint8), list(self.dataset.class_names))
        attrs = {
            **self.attrs,
            "created": ff.attrs.get("created", ""),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if self.compression is None:
            self.compression = _file_compression(ff)
        n_kept, n_done = len(kept_rows), len(kept_rows) + len(skipped)

        n_old = ff.n_rows

        def copy_done(wf: WorkingFile) -> None:
            window = max(1, (64 << 20) // max(1, self.feature_dim * wf.dtype.itemsize))
            out = 0
            with FeatureFile(self.output) as old:  # still the old file: the new one is not in place yet
                # a finished multi-layer file keeps each layer in its own dataset: read them side by side
                every = [info["name"] for info in old.layers]
                _, read = old._feature_source(every if old.progress is None and len(every) > 1 else None)
                for lo in range(0, n_old, window):
                    hi = min(n_old, lo + window)
                    sel = np.flatnonzero(keep[lo:hi])
                    if len(sel):
                        wf.add(range(out, out + len(sel)), read(lo, hi)[sel])
                        wf.commit()  # one window at a time: memory stays bounded
                        out += len(sel)
            wf.add([], None, failures=[(n_kept + i, r) for i, (_, r) in enumerate(skipped)], next_input=n_done)

        ff.close()  # no HDF5 file open here while the working file is created in a child process
        self._create(plan, self.dtype, attrs, copy_done)
        self.status = "updated"

    # -- rows ------------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return self.wf.capacity if self.wf is not None else 0

    def todo_paths(self, root: Path) -> list[Path]:
        return [Path(root) / p for p in self.todo]

    def add(self, positions, features, failures) -> None:
        """Add one batch: ``positions`` and ``failures`` index :attr:`todo` (as the pipeline yields them)."""
        covered = [*positions, *(p for p, _ in failures)]
        if not covered:
            return
        self.wf.add(
            [self.start + p for p in positions],
            features,
            [(self.start + p, reason) for p, reason in failures],
            next_input=self.start + max(covered) + 1,
        )

    def progress(self, callback: Callable[[int, int], None] | None):
        """Wrap a ``(done, total)`` progress callback so that it counts the images done before."""
        if callback is None or self.wf is None:
            return callback
        callback(self.start, self.total)
        return lambda done, _total: callback(self.start + done, self.total)

    # -- finish ----------------------------------------------------------------------------------
    def __exit__(self, exc_type, exc, tb) -> bool:
        wf = self.wf
        if wf is None:
            return False
        if exc_type is None:
            try:
                wf.commit()
            except BaseException as err:
                raise self._translate(err, "write") from None
            finally:
                wf.close()
            try:
                finalize(self.output, compression=self.compression, attrs=self.finish_attrs)
            except BaseException as err:
                raise self._translate(err, "finish") from None
            return False
        try:
            if not wf.broken and fsio.space_errno(exc) is None:
                try:  # interrupted (Ctrl-C) or the engine failed: keep every row computed so far
                    wf.commit()
                except Exception:  # noqa: BLE001 - the original error is the one to report
                    pass
        finally:
            wf.close()
        translated = self._translate(exc, "write")
        if translated is not exc:
            raise translated from None
        return False

    def _translate(self, exc: BaseException, stage: str) -> BaseException:
        code = fsio.space_errno(exc)
        if code is None:
            return exc
        why = fsio.describe_space_problem(code, self.output.parent if str(self.output.parent) else Path("."))
        if stage == "create":
            where = "the existing file is unchanged" if self.output.exists() else "nothing was written"
            return fsio.OutOfSpaceError(f"{self.output}: cannot create the feature file: {why}; {where}")
        try:
            with FeatureFile(self.output) as ff:
                p = ff.progress
                rows = ff.n_rows
                state = f"{p['inputs_done']} of {p['inputs_total']} images done" if p else "unchanged"
                need = fsio.human_bytes(rows * ff.feature_dim * ff.dtype.itemsize)
        except TransferkitError:  # pragma: no cover - the working file is never left unreadable
            rows, state, need = 0, "unknown", "?"
        if stage == "finish":
            return fsio.OutOfSpaceError(
                f"{self.output}: cannot finish the feature file: {why}; all {rows} rows are safe in it ({state}, "
                f"marked incomplete); make room for about {need} more and run the same command with --resume"
            )
        return fsio.OutOfSpaceError(
            f"{self.output}: extraction stopped: {why}; the file keeps its {rows} committed rows ({state}, marked "
            f"incomplete); make room and run the same command with --resume to continue"
        )


def _file_compression(ff: FeatureFile) -> str | None:
    if ff.progress is not None:
        value = ff.h5[working.GROUP].attrs.get("compression", "none")
        return value.decode() if isinstance(value, bytes) else str(value)
    return ff.h5[schema.FEATURES].compression or "none"
