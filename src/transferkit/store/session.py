"""One extraction session against its output file: :class:`ExtractionRun`, the context manager
:func:`transferkit.extract` adds its batches to, wherever they were computed (here or on Ray).

On entry it creates the crash-safe working file (:mod:`.working`) for a new run, reopens it to resume
(after the one settings check, :mod:`.settings`), or rebuilds it for an update (:mod:`.update_plan`);
``--resume`` of a dataset that changed is refused. On a clean exit it commits the last rows and
finishes the file (:mod:`.finalize`). The caller holds the output lock (:mod:`.lock`) and has chosen
the mode (:mod:`.mode`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import TransferkitError
from . import fsio, isolate
from ._testhook import checkpoint
from .advice import AdvisedError
from .finalize import finalize, temp_path
from .mode import check_storage_options
from .reader import FeatureFile, _decode_str
from .settings import check_dtype, check_settings
from .update_plan import copy_kept, file_compression, plan_update
from .working import Plan, WorkingFile, create_working_file


class DatasetChangedError(AdvisedError):
    """Files were added to or removed from the dataset since the file was started: ``added``, ``removed``."""


class CannotResumeError(AdvisedError):
    """The existing file cannot be resumed as it is (unreadable, or written without a resume record)."""


class ExtractionStoppedError(fsio.OutOfSpaceError, AdvisedError):
    """The disk filled up while extracting or finishing; the committed rows are kept for a resume."""


def _changes(added: list, removed: list) -> str:
    parts = []
    if added:
        parts.append(f"{len(added)} added (e.g. {added[0]!r})")
    if removed:
        parts.append(f"{len(removed)} removed (e.g. {removed[0]!r})")
    return ", ".join(parts)


class ExtractionRun:
    """One extraction session against ``output`` in ``mode`` (see :mod:`.mode`): ``dataset`` with each
    sample's ``split``, ``attrs`` the file records (an update splits new images with its ``test_size`` and
    ``seed``, recorded when the split is stratified), rows of ``feature_dim`` stored as ``dtype`` with
    ``compression``, committed every ``buffer_rows``."""

    def __init__(self, output: str | Path, *, mode: str, dataset, split, attrs: dict, feature_dim: int,
                 dtype: str | None = None, compression: str | None = None, buffer_rows: int = 1000):
        check_storage_options(dtype, compression)
        self.output = Path(output)
        self.mode = mode
        self.dataset = dataset
        self.labels = np.array([s.label for s in dataset.samples])
        self.split = np.asarray(split)
        self.attrs = dict(attrs)
        self.feature_dim = int(feature_dim)
        self.dtype = dtype
        self.compression = compression
        self.buffer_rows = buffer_rows
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
            plan = Plan([s.path for s in self.dataset.samples], self.labels.astype(np.int32),
                        self.split.astype(np.uint8), list(self.dataset.class_names))
            self._create(plan, self.dtype or "float32", self.attrs)
            self.n_added = len(plan)
        else:
            self._open_existing()
        return self

    def _create(self, plan: Plan, dtype: str, attrs: dict,
                copy_done: Callable[[WorkingFile], None] | None = None) -> None:
        tmp = temp_path(self.output)
        try:
            isolate.run(create_working_file, tmp, plan, feature_dim=self.feature_dim, dtype=dtype, attrs=attrs,
                        compression=self.compression)
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
        self._open_working()

    def _open_working(self) -> None:
        self.wf = WorkingFile.open(self.output, buffer_rows=self.buffer_rows)
        self.start = self.wf.next_input
        self.rows_before = self.wf.progress.rows
        self.todo = _decode_str(self.wf.plan_paths[self.start :])

    def _open_existing(self) -> None:
        action = self.mode
        try:
            ff = FeatureFile(self.output)
        except TransferkitError as exc:
            raise CannotResumeError("cannot {action}: {why}; pass {o[overwrite!]} to start over", action=action,
                                    why=str(exc)) from None
        with ff:
            check_settings(self.output, ff.attrs, self.attrs, action)
            check_dtype(self.output, str(ff.dtype), self.dtype, action)
            self.dtype = str(ff.dtype)
            current = [(s.path, self.dataset.class_names[s.label]) for s in self.dataset.samples]
            update = plan_update(ff, current, list(self.dataset.class_names), self.split,
                                 self.attrs.get("split_source"), self.attrs.get("test_size"), self.attrs.get("seed"))
            if ff.progress is not None and not update.changed:
                ff.close()
                self._open_working()  # an interrupted run, the dataset as it was: carry on in place
                self.status = "resumed"
                return
            if action == "resume":
                self._refuse_resume(ff, update)
            self._update(ff, update)

    def _refuse_resume(self, ff: FeatureFile, update) -> None:
        facts = dict(path=self.output, added=update.new, removed=update.gone, changes=_changes(update.new, update.gone))
        if ff.progress is not None:
            raise DatasetChangedError(
                "{path}: cannot resume: the dataset changed since this extraction started ({changes}); pass "
                "{o[update!]} to finish with the files there are now", **facts)
        if not ff.complete:
            raise CannotResumeError(
                "{path}: cannot resume: this incomplete file was written without a resume record; pass "
                "{o[update!]} to keep its {rows} rows and extract the rest, or {o[overwrite!]} to start over",
                path=self.output, rows=ff.n_rows)
        if update.changed:
            raise DatasetChangedError(
                "{path}: is complete, but the dataset changed since it was extracted ({changes}); pass "
                "{o[update!]} to extract only the new files and drop removed ones", **facts)

    def _update(self, ff: FeatureFile, update) -> None:
        self.n_added, self.n_removed = len(update.new), update.n_removed
        if ff.complete and not update.changed:
            self.status = "up to date"
            self.rows_before = ff.n_rows
            return
        attrs = {**self.attrs, "created": ff.attrs.get("created", ""),
                 "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if self.compression is None:
            self.compression = file_compression(ff)
        ff.close()  # no HDF5 file open here while the working file is created in a child process
        self._create(update.plan, self.dtype, attrs, lambda wf: copy_kept(self.output, wf, update))
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
        facts = dict(path=self.output, why=why, rows=rows, state=state, need=need, stage=stage)
        if stage == "finish":
            return ExtractionStoppedError(
                "{path}: cannot finish the feature file: {why}; all {rows} rows are safe in it ({state}, marked "
                "incomplete); make room for about {need} more and run the same command with {o[resume!]}", **facts)
        return ExtractionStoppedError(
            "{path}: extraction stopped: {why}; the file keeps its {rows} committed rows ({state}, marked "
            "incomplete); make room and run the same command with {o[resume!]} to continue", **facts)
