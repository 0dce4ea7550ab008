"""SIGKILL a real extraction at several points, resume it, and get the same file as a run that was
never interrupted, bit for bit. Also: a second writer is refused at once; a killed run's lock does not
block; an existing file is never clobbered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import add_bad_files, make_dataset
from extract_proc import BATCH, BUFFER, assert_same_file, launch, sigkill, wait_stopped

import transferkit as tk
from transferkit.cli._flags import resume_command, worded
from transferkit.errors import IncompleteFileError, TransferkitError
from transferkit.store import fsio
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
        with pytest.raises(IncompleteFileError, match="incomplete feature file.*resume=True"):
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
    with pytest.raises(TransferkitError, match=r"exists \(a complete feature file, 12 rows\); pass update=True") as e:
        tk.extract(data, out)
    assert e.value.state == "complete" and e.value.rows == 12  # the facts, for a caller to act on
    assert "; pass --update to add new images and drop removed ones, or --overwrite to replace it" in worded(e.value)
    with pytest.raises(TransferkitError, match="cannot be combined"):
        tk.extract(data, out, overwrite=True, resume=True)
    other = tmp_path / "notes.h5"
    other.write_text("my notes")
    with pytest.raises(TransferkitError, match=r"\(not a readable transferkit feature file\); pass overwrite=") as e:
        tk.extract(data, other)
    assert worded(e.value).endswith("pass --overwrite to replace it, or choose another -o")
    with pytest.raises(TransferkitError, match="cannot resume: .*not an HDF5 file.*overwrite=True") as e:
        tk.extract(data, other, resume=True)
    assert worded(e.value).endswith("; pass --overwrite to start over")
    assert out.read_bytes() == before and other.read_text() == "my notes"


def test_interrupted_run_keeps_its_rows_and_resume_of_a_complete_file_does_nothing(tmp_path, data, reference):
    out = tmp_path / "f.h5"
    _interrupted(data, out)  # Ctrl-C while the 4th batch (inputs 6, 7) is being extracted
    with tk.open_features(out) as ff:
        assert ff.n_rows == 6 and not ff.complete  # the buffered 3rd batch was committed on the way out
    with pytest.raises(
        TransferkitError, match=r"already exists \(an incomplete feature file, 6 of 16 images done\); pass resume=True"
    ) as e:
        tk.extract(data, out, batch_size=BATCH)
    assert "; pass --resume to finish it, or --overwrite to start over" in worded(e.value)
    r = tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, resume=True)
    assert (r.status, r.rows_before, r.n_processed) == ("resumed", 6, 10)
    assert_same_file(reference, out)
    r = tk.extract(data, out, batch_size=BATCH, resume=True)
    assert (r.status, r.n_processed, r.n_rows) == ("up to date", 0, 12)


def test_ctrl_c_in_the_cli_says_what_was_kept_and_how_to_finish(tmp_path, data, reference):
    import shlex
    import signal

    out = tmp_path / "f.h5"
    proc = launch(data, out, stop_at="commit:1")  # frozen right after its first commit (4 rows)
    wait_stopped(proc)
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C, delivered as soon as it runs again
    os.kill(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=120) == 130
    said = out.with_name(out.name + ".log").read_text()
    assert "interrupted: " in said and " of 16 images done and kept in " in said, said
    command = said.split("finish with `", 1)[1].split("`", 1)[0]
    words = shlex.split(command)
    assert words[:2] == ["transferkit", "extract"] and words[-1] == "--resume"
    assert "--batch-size" in words and words[words.index("--batch-size") + 1] == str(BATCH)  # not the default
    done = subprocess.run([sys.executable, "-m", "transferkit", *words[1:]], capture_output=True, text=True)
    assert done.returncode == 0 and "resumed " in done.stdout, done.stdout + done.stderr  # run as printed
    assert_same_file(reference, out)


def test_the_printed_resume_command_carries_every_non_default_setting(tmp_path, data):
    import shlex

    out = tmp_path / "f.h5"

    def interrupt(done, total):
        if done > 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tk.extract(
            data,
            out,
            weights="random",
            image_size=(48, 64),
            seed=7,
            test_size=0.5,
            batch_size=BATCH,
            buffer_rows=BUFFER,
            progress=interrupt,
            workers=1,
        )
    with tk.open_features(out) as ff:
        words = shlex.split(resume_command(ff))
    assert words[:5] == ["transferkit", "extract", str(data.resolve()), "-o", str(out)] and words[-1] == "--resume"
    flags = dict(zip(words[5:-1:2], words[6:-1:2]))
    assert flags == {
        "--weights": "random",
        "--image-size": "48x64",
        "--batch-size": str(BATCH),
        "--test-size": "0.5",
        "--seed": "7",
    }
    done = subprocess.run([sys.executable, "-m", "transferkit", *words[1:]], capture_output=True, text=True)
    assert done.returncode == 0 and "resumed " in done.stdout, done.stdout + done.stderr


def _interrupted(data, out):
    """An incomplete file with 6 committed rows (6 of 16 images done), made by a Ctrl-C."""

    def interrupt(done, total):
        if done > 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, progress=interrupt, workers=1)


@pytest.mark.slow
def test_file_size_limit_mid_run_stops_with_one_line_and_resume_finishes(tmp_path, data, reference):
    out = tmp_path / "f.h5"
    _interrupted(data, out)
    with tk.open_features(out) as ff:
        row_bytes = ff.feature_dim * 4
        end_of_committed = ff.h5["features"].id.get_offset() + ff.n_rows * row_bytes
    blocks = end_of_committed // 1024  # `ulimit -f` counts 1 KiB blocks: the next rows lie past it
    proc = subprocess.run(
        [
            "bash",
            "-c",
            f'ulimit -f {blocks} && exec "$0" "$@"',
            sys.executable,
            "-m",
            "transferkit",
            "extract",
            str(data),
            "-o",
            str(out),
            "-b",
            str(BATCH),
            "--buffer-rows",
            str(BUFFER),
            "--resume",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"},
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert (
        f"error: {out}: extraction stopped: the file-size limit was reached (ulimit -f: "
        f"{fsio.human_bytes(blocks * 1024)})"
        in lines[0]
    )
    assert "keeps its 6 committed rows (6 of 16 images done, marked incomplete)" in lines[0] and "--resume" in lines[0]
    with tk.open_features(out) as ff:
        assert not ff.complete and ff.n_rows == 6
    r = tk.extract(data, out, batch_size=BATCH, buffer_rows=BUFFER, resume=True)
    assert (r.status, r.rows_before) == ("resumed", 6)
    assert_same_file(reference, out)


DISK_FULL = r"""
set -u
mnt=$(mktemp -d)
mount -t tmpfs -o size=512k tmpfs "$mnt" || exit 97
avail=$(df --output=avail -B1 "$mnt" | tail -1)
dd if=/dev/zero of="$mnt/filler" bs=4096 count=$(( (avail - 81920) / 4096 )) 2>/dev/null  # leave 80 KB
run() { "$PY" -m transferkit "$@"; }
run extract "$DATA" -o "$mnt/f.h5" -b 2 --buffer-rows 3 --workers 1 >"$OUT/run1.out" 2>"$OUT/run1.err"
echo $? >"$OUT/run1.rc"
run inspect "$mnt/f.h5" --json >"$OUT/inspect.json" 2>"$OUT/inspect.err"
rm "$mnt/filler"
run extract "$DATA" -o "$mnt/f.h5" -b 2 --buffer-rows 3 --workers 1 --resume >"$OUT/run2.out" 2>"$OUT/run2.err"
echo $? >"$OUT/run2.rc"
cp "$mnt/f.h5" "$OUT/f.h5"
"""


@pytest.mark.slow
def test_full_disk_stops_with_one_line_and_resume_finishes_once_there_is_room(tmp_path, data, reference):
    """A real full disk: a 512 KB tmpfs mounted in a user namespace (skipped where that is not allowed)."""
    if subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode != 0:
        pytest.skip("unprivileged user namespaces are not available here, so no private tmpfs to fill")
    env = {
        **os.environ,
        "PY": sys.executable,
        "DATA": str(data),
        "OUT": str(tmp_path),
        "COLUMNS": "300",
        "NO_COLOR": "1",
    }
    proc = subprocess.run(["unshare", "-Urm", "bash", "-c", DISK_FULL], env=env, capture_output=True, text=True)
    if proc.returncode == 97:
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    first = (tmp_path / "run1.err").read_text().strip().splitlines()
    assert (tmp_path / "run1.rc").read_text().strip() == "1"
    assert len(first) == 1 and "is full" in first[0] and "marked incomplete" in first[0] and "--resume" in first[0], (
        first
    )
    info = json.loads((tmp_path / "inspect.json").read_text())
    assert info["complete"] is False and 0 < info["progress"]["inputs_done"] < 16
    assert f"keeps its {info['n_rows']} committed rows" in first[0]
    assert (tmp_path / "run2.rc").read_text().strip() == "0", (tmp_path / "run2.err").read_text()
    assert "resumed" in (tmp_path / "run2.out").read_text()
    assert_same_file(reference, tmp_path / "f.h5")


def test_evaluate_refuses_an_incomplete_file(tmp_path, data, trained):
    out = tmp_path / "f.h5"
    _interrupted(data, out)
    with pytest.raises(IncompleteFileError, match=r"6 of 16 images done.*resume=True\)` before you evaluate on it"):
        tk.evaluate(trained.model, out)


def test_the_cli_words_an_incomplete_file_as_the_command_that_resumes_it(tmp_path, data):
    """The store's error carries the settings; the Python text names the call, the CLI the command line."""
    import shlex

    out = tmp_path / "f.h5"
    _interrupted(data, out)
    with pytest.raises(IncompleteFileError) as caught:
        tk.train(out)
    assert f"Resume it with `transferkit.extract({str(data.resolve())!r}, {str(out)!r}, " in str(caught.value)
    args = [sys.executable, "-m", "transferkit", "train", str(out), "-o", str(tmp_path / "m.safetensors")]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 1
    start = shlex.join(["transferkit", "extract", str(data.resolve()), "-o", str(out)])  # a path with a space
    assert f"Resume it with `{start} " in done.stderr
    assert "--resume` before you train on it" in done.stderr
    shown = subprocess.run([sys.executable, "-m", "transferkit", "inspect", "--json", str(out)], capture_output=True)
    command = json.loads(shown.stdout)["resume_command"]
    assert command.startswith(start + " ") and command.endswith(" --resume")


def test_bad_storage_options_are_refused_before_any_work(tmp_path, data):
    with pytest.raises(TransferkitError, match="^dtype must be one of float32, float16, got 'int8'") as e:
        tk.extract(data, tmp_path / "f.h5", dtype="int8")
    assert worded(e.value) == "--dtype must be one of float32, float16, got 'int8'"
    with pytest.raises(TransferkitError, match="^compression must be one of none, lzf, gzip, got 'zstd'") as e:
        tk.extract(data, tmp_path / "f.h5", compression="zstd")
    assert worded(e.value) == "--compression must be one of none, lzf, gzip, got 'zstd'"
    assert not list(tmp_path.iterdir())
