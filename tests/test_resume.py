"""SIGKILL a real extraction at several points, resume it, and get the same file as a run that was
never interrupted, bit for bit. Also: a second writer is refused at once; a killed run's lock does not
block; an existing file is never clobbered."""

from __future__ import annotations

import time

import pytest
from conftest import add_bad_files, make_dataset
from extract_proc import BATCH, BUFFER, assert_same_file, launch, sigkill, wait_stopped

import transferkit as tk
from transferkit.errors import IncompleteFileError, TransferkitError
from transferkit.store.lock import LockedError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """16 inputs (4 unreadable, among the last class's files) -> 12 rows."""
    root = make_dataset(tmp_path_factory.mktemp("resume") / "my photos", per_class=4)
    add_bad_files(root / "red disc")
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("reference") / "uninterrupted.h5"
    tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER)
    return out


# Where the run is killed -> rows the killed file must show. Batches of 2 rows, a commit once 3 rows
# are buffered: commits after rows 4, 8 and 12; the 5th batch (inputs 8..13) holds 4 unreadable files.
# (The rename points `create` and `finalize`, and every other commit, are killed in test_crash_points.)
KILL_POINTS = {
    "batch:1": 0,  # before the first flush: 2 rows in memory
    "commit:1": 4,  # right after a flush
    "data:2": 4,  # the second commit's rows written and flushed, its progress record not yet
    "batch:5": 8,  # mid-buffer: two commits on disk, 2 rows and 4 skipped files in memory
}


def test_sigkill_at_any_point_then_resume_gives_the_uninterrupted_file(tmp_path, data, reference):
    runs = {point: tmp_path / f"killed at {point.replace(':', ' ')}.h5" for point in KILL_POINTS}
    procs = {point: launch(data, out, stop_at=point) for point, out in runs.items()}
    free_out = tmp_path / "killed from outside.h5"
    free = launch(data, free_out)  # no hook: killed at whatever moment the test sees committed rows
    try:
        free_rows = _kill_once_rows_committed(free, free_out)
        for proc in procs.values():
            wait_stopped(proc)

        # While it is frozen, the run holds its lock: a second writer is refused at once.
        out, proc = runs["batch:5"], procs["batch:5"]
        started = time.monotonic()
        with pytest.raises(LockedError, match=rf"process {proc.pid} is writing this feature file"):
            tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, resume=True)
        assert time.monotonic() - started < 60  # refused before loading a model, not after a run
        for proc in procs.values():
            sigkill(proc)
    finally:
        for proc in [*procs.values(), free]:
            if proc.poll() is None:
                proc.kill()

    for point, rows in [*KILL_POINTS.items(), ("outside", free_rows)]:
        out = runs.get(point, free_out)
        with tk.open_features(out) as ff:  # readable, incomplete, exactly the committed rows
            assert not ff.complete
            assert ff.n_rows == rows and len(ff.paths) == rows and len(ff.split) == rows
        with pytest.raises(IncompleteFileError, match="incomplete feature file.*--resume"):
            tk.train(out)
        assert out.with_name(out.name + ".lock").exists()  # left behind by the killed run ...
        r = tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, resume=True)  # ... and no obstacle
        assert (r.status, r.rows_before) == ("resumed", rows), point
        assert_same_file(reference, out)
        assert not out.with_name(out.name + ".tmp").exists() and not out.with_name(out.name + ".lock").exists()
        with tk.open_features(out) as ff:
            assert ff.attrs["resumes"] == (1 if rows else 0)


def _kill_once_rows_committed(proc, out, timeout=300):
    """SIGKILL ``proc`` as soon as ``out`` shows committed rows (reading it while it is written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the extraction finished before the test could kill it"
        if out.exists():
            try:
                with tk.open_features(out) as ff:
                    rows = ff.n_rows
            except TransferkitError:
                rows = 0
            if rows:
                sigkill(proc)
                with tk.open_features(out) as ff:
                    return ff.n_rows
        time.sleep(0.02)
    raise AssertionError("no rows were committed in time")


def test_an_existing_file_is_never_clobbered(tmp_path, data, reference):
    out = tmp_path / "f.h5"
    out.write_bytes(reference.read_bytes())
    before = out.read_bytes()
    with pytest.raises(TransferkitError, match=r"already exists \(a complete feature file, 12 rows\); pass --update"):
        tk.extract(data, out)
    with pytest.raises(TransferkitError, match="cannot be combined"):
        tk.extract(data, out, overwrite=True, resume=True)
    other = tmp_path / "notes.h5"
    other.write_text("my notes")
    with pytest.raises(TransferkitError, match=r"\(not a readable transferkit feature file\); pass --overwrite"):
        tk.extract(data, other)
    with pytest.raises(TransferkitError, match="cannot resume: .*not an HDF5 file.*--overwrite"):
        tk.extract(data, other, resume=True)
    assert out.read_bytes() == before and other.read_text() == "my notes"


def test_interrupted_run_keeps_its_rows_and_resume_of_a_complete_file_does_nothing(tmp_path, data, reference):
    out = tmp_path / "f.h5"

    def interrupt(done, total):  # Ctrl-C while the 4th batch (inputs 6, 7) is being extracted
        if done > 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, progress=interrupt, workers=1)
    with tk.open_features(out) as ff:
        assert ff.n_rows == 6 and not ff.complete  # the buffered 3rd batch was committed on the way out
    with pytest.raises(TransferkitError, match=r"already exists \(an incomplete feature file, 6 of 16 images done\); pass --resume"):
        tk.extract(data, out, batch_size=BATCH)
    r = tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, resume=True)
    assert (r.status, r.rows_before, r.n_processed) == ("resumed", 6, 10)
    assert_same_file(reference, out)
    r = tk.extract(data, out, batch_size=BATCH, resume=True)
    assert (r.status, r.n_processed, r.n_rows) == ("up to date", 0, 12)
