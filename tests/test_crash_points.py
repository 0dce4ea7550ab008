"""Kill a process writing a feature file at every named point of a run, and at random moments, and
resume it: the file always opens, says it is incomplete, and resumes to the uninterrupted result.

The writer here is the store's real extraction session (ExtractionRun: working file, commits, finish,
renames) fed with deterministic synthetic features instead of a model, in a forked child process,
so dozens of SIGKILLs cost seconds. test_resume.py does the same through the real CLI and model.
"""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
import zlib

import numpy as np
import pytest
from extract_proc import assert_same_file

from transferkit.cli._flags import worded
from transferkit.data import discover, stratified_split
from transferkit.store import _testhook as testhook
from transferkit.store import open_features
from transferkit.store.mode import resolve_mode
from transferkit.store.session import ExtractionRun

DIM = 32
BATCH, BUFFER = 2, 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash") / "images"
    for cls, names in {
        "cats": ["c0", "c1", "bad c2", "c3", "c4", "c5"],
        "dogs ç": ["d0", "bad d1", "bad d2", "d3", "d4", "d5", "d6", "bad d7"],
    }.items():
        (root / cls).mkdir(parents=True)
        for name in names:
            (root / cls / f"{name}.jpg").write_bytes(b"")  # never decoded: features come from the name
    return root


def features_for(path: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(path.encode())).standard_normal(DIM).astype(np.float32)


def run_extraction(data, out, resume: bool = False, delay: float = 0.0):
    """What extract() does, with a fake model: batches of BATCH readable files, 'bad' files unreadable."""
    dataset = discover(data)
    labels = np.array([s.label for s in dataset.samples])
    split = stratified_split(labels, 0.25, 7)
    attrs = {
        "model": "fake",
        "weights_sha256": "f" * 64,
        "layer": "pre_logits",
        "pool": "avg",
        "preprocess": {},
        "dataset_root": str(data),
        "source": "folder",
        "test_size": 0.25,
        "seed": 7,
        "n_images": len(dataset),
        "batch_size": BATCH,
        "engine": "fake",
    }
    with ExtractionRun(
        out,
        mode=resolve_mode(out, resume=resume),
        dataset=dataset,
        split=split,
        attrs=attrs,
        feature_dim=DIM,
        buffer_rows=BUFFER,
    ) as run:
        positions, failures = [], []
        for pos, rel in enumerate(run.todo):
            if "bad" in rel:
                failures.append((pos, "unreadable"))
            else:
                positions.append(pos)
            if len(positions) == BATCH:
                run.add(positions, np.stack([features_for(run.todo[p]) for p in positions]), failures)
                positions, failures = [], []
                time.sleep(delay)
        if positions or failures:
            feats = np.stack([features_for(run.todo[p]) for p in positions]) if positions else None
            run.add(positions, feats, failures)
    return run


def in_child(fn, stop_at: str | None = None) -> int:
    """Run ``fn`` in a forked child (frozen at ``stop_at`` if given); return its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            testhook._seen.clear()
            if stop_at:
                os.environ[testhook.ENV] = stop_at
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("crash-ref") / "ref.h5"
    run_extraction(data, out)
    return out


def all_points(data, tmp_path) -> list[str]:
    """Every named point an uninterrupted run passes, with its occurrence: ['create:1', 'batch:1', ...]."""
    os.environ[testhook.ENV] = "nowhere:1"  # count every point, stop at none
    testhook._seen.clear()
    try:
        run_extraction(data, tmp_path / "count.h5")
        seen = dict(testhook._seen)
    finally:
        del os.environ[testhook.ENV]
    return [f"{name}:{i}" for name, n in seen.items() for i in range(1, n + 1)]


def check_and_resume(out, reference, data) -> None:
    tmp = out.with_name(out.name + ".tmp")
    if out.exists():
        with open_features(out) as ff:  # always opens
            committed, complete = ff.n_rows, ff.complete
            assert complete == (not tmp.exists() and ff.progress is None)
            ff.paths, ff.labels, ff.split, ff.skipped, list(ff.iter_chunks(chunk_rows=4))
        if not complete:
            run = run_extraction(data, out, resume=True)
            assert run.status == "resumed" and run.rows_before == committed
    else:
        run_extraction(data, out, resume=True)
    assert_same_file(reference, out)
    assert not tmp.exists()


def test_sigkill_at_every_named_point(tmp_path, data, reference):
    points = all_points(data, tmp_path)
    assert {p.split(":")[0] for p in points} == {"create", "batch", "data", "commit", "finalize"}
    assert len(points) >= 13
    for point in points:
        out = tmp_path / f"{point.replace(':', '-')}.h5"
        pid = in_child(lambda out=out: run_extraction(data, out), stop_at=point)
        _, status = os.waitpid(pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), f"child did not stop at {point}"
        kill(pid)
        check_and_resume(out, reference, data)


def test_sigkill_at_random_moments(tmp_path, data, reference):
    start = time.perf_counter()  # how long a whole run takes in a child, fork included
    os.waitpid(in_child(lambda: run_extraction(data, tmp_path / "timing.h5", delay=0.005)), 0)
    span = time.perf_counter() - start
    rng = random.Random(1234)
    for i in range(25):
        out = tmp_path / f"random-{i}.h5"
        pid = in_child(lambda out=out: run_extraction(data, out, delay=0.005))
        time.sleep(rng.uniform(0, span))
        kill(pid)
        check_and_resume(out, reference, data)


def _in_child_with_file_size_limit(fn, limit: int, report) -> int:
    """Run ``fn`` in a child limited to files of ``limit`` bytes (as `ulimit -f`); write what it raised
    to ``report``; return its exit status."""
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            report.write_text(f"{type(exc).__name__}: {worded(exc)}")  # as the command line words it
            raise

    _, status = os.waitpid(in_child(limited), 0)
    return os.waitstatus_to_exitcode(status)


def test_file_size_limit_at_start_mid_run_and_while_finishing(tmp_path, data, reference):
    report = tmp_path / "report.txt"
    # At the start: the working file cannot even be created; nothing is left behind.
    out = tmp_path / "start.h5"
    assert _in_child_with_file_size_limit(lambda: run_extraction(data, out), 4096, report) == 1
    assert report.read_text().startswith(
        f"OutOfSpaceError: {out}: cannot create the feature file: the file-size limit was reached"
    )
    assert "nothing was written" in report.read_text()
    assert not out.exists() and not out.with_name(out.name + ".tmp").exists()

    # Mid-run: the rows of a later commit lie past the limit; committed rows stay, the file stays readable.
    out = tmp_path / "mid.h5"
    pid = in_child(lambda: run_extraction(data, out), stop_at="commit:1")
    os.waitpid(pid, os.WUNTRACED)
    kill(pid)
    with open_features(out) as ff:
        committed = ff.n_rows
        features_at = ff.h5["features"].id.get_offset()
    limit = features_at + (committed + 1) * DIM * 4  # the next commit's rows cross it
    assert _in_child_with_file_size_limit(lambda: run_extraction(data, out, resume=True), limit, report) == 1
    text = report.read_text()
    assert "extraction stopped: the file-size limit was reached (ulimit -f:" in text
    assert f"keeps its {committed} committed rows" in text and "--resume" in text
    with open_features(out) as ff:
        assert not ff.complete and ff.n_rows == committed

    # While finishing: every row is committed, but the finished copy does not fit.
    out = tmp_path / "finish.h5"
    pid = in_child(lambda: run_extraction(data, out), stop_at="finalize:1")
    os.waitpid(pid, os.WUNTRACED)
    kill(pid)
    assert _in_child_with_file_size_limit(lambda: run_extraction(data, out, resume=True), 8192, report) == 1
    text = report.read_text()
    assert "cannot finish the feature file: the file-size limit was reached" in text and "all 10 rows are safe" in text
    with open_features(out) as ff:
        assert not ff.complete and ff.n_rows == 10
    assert not out.with_name(out.name + ".tmp").exists()

    # With room again, --resume finishes each one: the same file as an uninterrupted run.
    for name in ("start.h5", "mid.h5", "finish.h5"):
        run_extraction(data, tmp_path / name, resume=True)
        assert_same_file(reference, tmp_path / name)
