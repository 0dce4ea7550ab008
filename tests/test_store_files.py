"""The feature store without a model: the crash-safe working file, finishing it, chunked reading,
verify, and clear errors for files that are not (or no longer) readable feature files."""

from __future__ import annotations

import shlex
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from transferkit.cli import app
from transferkit.cli._flags import worded
from transferkit.errors import IncompleteFileError, TransferkitError
from transferkit.store import FeatureFile, FeatureWriter, open_features
from transferkit.store.finalize import finalize
from transferkit.store.verify import verify_features
from transferkit.store.working import GROUP, PROGRESS, Plan, WorkingFile, create_working_file

DIM = 48
CLASSES = ["a", "b", "ç"]
ATTRS = {"model": "m", "weights_sha256": "0" * 64, "layer": "pre_logits", "pool": "avg",
         "preprocess": {"input_size": [8, 8]}, "dataset_root": "/data", "source": "folder", "test_size": 0.25,
         "seed": 1, "batch_size": 4, "engine": "torch"}


def plan_of(n: int, seed: int = 0) -> Plan:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n).astype(np.int32)
    return Plan([f"{CLASSES[lab]}/ïmage {i:04d}.jpg" for i, lab in enumerate(labels)], labels,
                (rng.random(n) < 0.3).astype(np.uint8), CLASSES)


def features_of(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def working_file(path, n=40, rows=None, skip=(), dtype="float32", compression=None, buffer_rows=8, attrs=None):
    """A working file for ``n`` inputs with ``rows`` of them done (inputs in ``skip`` unreadable)."""
    plan = plan_of(n)
    feats = features_of(n)
    attrs = {**ATTRS, "n_images": n, **(attrs or {})}
    create_working_file(path, plan, feature_dim=DIM, dtype=dtype, attrs=attrs, compression=compression)
    wf = WorkingFile.open(path, buffer_rows=buffer_rows)
    for i in range(n if rows is None else rows):
        if i in skip:
            wf.add([], None, failures=[(i, f"broken file number {i}")])
        else:
            wf.add([i], feats[i : i + 1])
    wf.commit()
    wf.close()
    return plan, feats


def finished_file(path, n=40, **kwargs):
    tmp = path.with_name("w-" + path.name)
    plan, feats = working_file(tmp, n, **kwargs)
    finalize(tmp)
    shutil.move(tmp, path)
    return plan, feats


# -- the working file ------------------------------------------------------------------------------
def test_working_file_serves_only_committed_rows(tmp_path):
    path = tmp_path / "w.h5"
    plan, feats = working_file(path, n=40, rows=0)
    wf = WorkingFile.open(path, buffer_rows=1000)
    wf.add(range(0, 12), feats[:12])
    wf.commit()
    wf.add(range(12, 20), feats[12:20])  # buffered, never committed (as if the process died now)
    wf.close()
    with open_features(path) as ff:
        assert not ff.complete
        assert ff.n_rows == 12
        assert ff.progress == {"rows": 12, "skipped": 0, "inputs_done": 12, "inputs_total": 40, "sessions": 1}
        np.testing.assert_array_equal(ff.load()[0], feats[:12])
        assert ff.paths == plan.paths[:12]
        np.testing.assert_array_equal(ff.labels, plan.labels[:12])
        with pytest.raises(IncompleteFileError, match=r"12 of 40 images done.*resume=True"):
            ff.require_complete("train on")


def test_uncommitted_rows_on_disk_are_ignored_and_a_torn_progress_record_falls_back(tmp_path):
    path = tmp_path / "w.h5"
    plan, feats = working_file(path, n=30, rows=10, buffer_rows=5)  # commits at 5 and 10
    with h5py.File(path, "r+") as f:  # rows 10..14 written but not committed, as a crash mid-commit leaves them
        f["features"][10:15] = feats[10:15]
        slots = f[GROUP][PROGRESS][()]
        newest = max(range(2), key=lambda i: slots[i][0])
        torn = slots[newest].copy()
        torn[1] += 3  # a half-written record: its checksum no longer matches
        f[GROUP][PROGRESS][newest] = torn
    with open_features(path) as ff:
        assert ff.n_rows == 5  # the older, intact record
    with h5py.File(path, "r+") as f:
        f[GROUP][PROGRESS][:] = 0
    with pytest.raises(TransferkitError, match="no valid progress record"):
        open_features(path)


def test_appending_rows_changes_no_byte_outside_the_datasets_storage(tmp_path):
    """The crash-safety argument: after creation, no HDF5 metadata byte is ever rewritten, so a
    process killed mid-write cannot leave the file unopenable."""
    path = tmp_path / "w.h5"
    plan, feats = working_file(path, n=40, rows=0)
    with h5py.File(path, "r") as f:
        raw = [(ds.id.get_offset(), ds.id.get_storage_size()) for ds in
               (f["features"], f["labels"], f["paths"], f["split"], f[GROUP]["skipped_input"],
                f[GROUP]["skipped_reason"], f[GROUP][PROGRESS])]
    before = np.frombuffer(path.read_bytes(), np.uint8)
    wf = WorkingFile(path, buffer_rows=6, _durable=False)
    for i in range(25):
        wf.add([i], feats[i : i + 1], failures=[(39, "x")] if i == 24 else ())
    wf.commit()
    wf.close()
    assert wf.progress.rows == 25 and wf.progress.seq > 3
    after = np.frombuffer(path.read_bytes(), np.uint8)
    assert len(after) == len(before)
    metadata = np.ones(len(before), bool)
    for offset, size in raw:
        metadata[offset : offset + size] = False
    changed = np.flatnonzero((before != after) & metadata)
    assert not len(changed), f"bytes outside the datasets' storage changed at {changed[:5]}"
    assert (before != after).any()
    with open_features(path) as ff:  # and HDF5 reads back exactly what was written raw
        np.testing.assert_array_equal(ff.load()[0], feats[:25])
        assert ff.paths == plan.paths[:25] and ff.skipped == [(plan.paths[39], "x")]


def test_finalize_writes_the_ordinary_layout(tmp_path):
    work = tmp_path / "w.h5"
    plan, feats = working_file(work, n=40, skip=(3, 17))
    finalize(work)
    with open_features(work) as ff, h5py.File(work, "r") as f:
        assert ff.complete and GROUP not in f
        assert ff.n_rows == 38
        keep = [i for i in range(40) if i not in (3, 17)]
        np.testing.assert_array_equal(ff.load()[0], feats[keep])
        assert ff.paths == [plan.paths[i] for i in keep]
        assert ff.skipped == [(plan.paths[3], "broken file number 3"), (plan.paths[17], "broken file number 17")]
        assert f["features"].chunks[1] == DIM and f["features"].maxshape == (None, DIM)  # whole rows per chunk
        assert ff.attrs["resumes"] == 0 and ff.attrs["preprocess"] == {"input_size": [8, 8]}
    assert not work.with_name(work.name + ".tmp").exists()


@pytest.mark.parametrize("dtype, compression", [("float16", None), ("float32", "lzf"), ("float16", "gzip")])
def test_dtype_and_compression_round_trip(tmp_path, dtype, compression):
    path = tmp_path / "f.h5"
    plan, feats = finished_file(path, n=40, dtype=dtype, compression=compression)
    with open_features(path) as ff, h5py.File(path, "r") as f:
        assert str(ff.dtype) == dtype and f["features"].compression == compression
        got = ff.load()[0]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, feats.astype(dtype).astype(np.float32))
        assert verify_features(path).ok


def test_float16_overflow_is_a_clear_error(tmp_path):
    path = tmp_path / "w.h5"
    working_file(path, n=10, rows=0, dtype="float16")
    wf = WorkingFile.open(path, buffer_rows=100)
    wf.add([0], np.full((1, DIM), 1e6, np.float32))
    with pytest.raises(TransferkitError, match="exceed the range of float16.*dtype='float32'") as e:
        wf.commit()
    assert worded(e.value).endswith("; extract with --dtype float32")
    wf.close()
    with open_features(path) as ff:
        assert ff.n_rows == 0


# -- reading in chunks -----------------------------------------------------------------------------
def test_iter_chunks_serves_a_split_in_file_order_in_exact_chunks(tmp_path):
    path = tmp_path / "f.h5"
    plan, feats = finished_file(path, n=300)
    with open_features(path) as ff:
        for split, code in (("train", 0), ("test", 1), (None, None)):
            want = np.arange(300) if code is None else np.flatnonzero(plan.split == code)
            chunks = list(ff.iter_chunks(split, 32))  # positional chunk_rows, as before
            assert [len(c) for c, _ in chunks[:-1]] == [32] * (len(chunks) - 1) and 0 < len(chunks[-1][0]) <= 32
            np.testing.assert_array_equal(np.concatenate([c for c, _ in chunks]), feats[want])
            np.testing.assert_array_equal(np.concatenate([y for _, y in chunks]), plan.labels[want])
            X, y = ff.load(split)
            np.testing.assert_array_equal(X, feats[want])
        assert ff.count("test") == int(plan.split.sum())


def test_max_memory_sets_the_chunk_size(tmp_path):
    path = tmp_path / "f.h5"
    plan, feats = finished_file(path, n=300)
    with open_features(path) as ff:
        rows = ff.chunk_rows_for("64KB")
        assert rows == 64_000 // (DIM * 4 * 4)  # four float32 buffers of a chunk fit the budget
        sizes = [len(c) for c, _ in ff.iter_chunks("train", max_memory="64KB")]
        assert max(sizes) == rows and sum(sizes) == ff.count("train")
        assert max(len(c) for c, _ in ff.iter_chunks("train", 50, max_memory="1GB")) == 50  # the smaller wins
    with pytest.raises(TransferkitError, match="as a size"):
        next(open_features(path).iter_chunks(max_memory="lots"))


def test_iter_chunks_on_an_incomplete_file_reads_committed_rows(tmp_path):
    path = tmp_path / "w.h5"
    plan, feats = working_file(path, n=100, rows=70)
    with open_features(path) as ff:
        got = np.concatenate([c for c, _ in ff.iter_chunks(chunk_rows=16)])
        np.testing.assert_array_equal(got, feats[:70])


# -- verify ----------------------------------------------------------------------------------------
def test_verify_passes_a_good_file_and_names_each_problem(tmp_path):
    path = tmp_path / "f.h5"
    finished_file(path, n=40)
    v = verify_features(path)
    assert v.ok, v.problems
    want = {"shapes", "counts", "label range", "split values", "finite features", "provenance attributes"}
    assert {c.name for c in v.checks} >= want
    with h5py.File(path, "r+") as f:
        f["features"][7, 3] = np.nan
        f["features"][9, 0] = np.inf
        f["labels"][2] = 7
        f["split"][4] = 9
        del f.attrs["weights_sha256"]
    v = verify_features(path)
    bad = {c.name: c.detail for c in v.problems}
    assert "2 rows with NaN or Inf (first: row 7" in bad["finite features"]
    assert "1 labels outside 0..2" in bad["label range"]
    assert "1 rows not 0 (train), 1 (test) or 2 (val)" in bad["split values"]
    assert "weights_sha256" in bad["provenance attributes"]
    result = CliRunner().invoke(app, ["inspect", str(path), "--verify"])
    assert result.exit_code == 1
    assert "verify found 5 problem(s)" in result.output  # and the checksums of the changed rows


def test_verify_counts_rows_against_images(tmp_path):
    path = tmp_path / "f.h5"
    finished_file(path, n=40, skip=(5,))
    with h5py.File(path, "r+") as f:
        f.attrs["n_images"] = 45
    assert [c.name for c in verify_features(path).problems] == ["counts"]


# -- files that are not (or no longer) feature files -----------------------------------------------
def _all_reads(path):
    with open_features(path) as ff:
        ff.attrs, ff.label_names, ff.labels, ff.paths, ff.split, ff.skipped  # noqa: B018 (each read is the test)
        list(ff.iter_chunks(chunk_rows=8))
    verify_features(path)


def _damage(kind: str, path):
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("path,label\na.jpg,cat\n")
    elif kind == "other hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(3)
    elif kind == "truncated":
        finished_file(path, n=300)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated working":
        working_file(path, n=300, rows=100)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif kind == "garbled metadata":
        finished_file(path, n=300)
        with h5py.File(path, "r") as f:
            header = f["labels"].id.get_offset() or 0
            btree = f["features"].id.get_chunk_info(0).byte_offset
        data = bytearray(path.read_bytes())
        rng = np.random.default_rng(0)
        start = 96  # everything after the superblock up to the first chunk of rows: object headers, B-trees
        stop = min(btree, header or btree)
        data[start:stop] = rng.integers(0, 256, stop - start, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
    elif kind == "garbled dataset header":
        finished_file(path, n=300)
        with h5py.File(path, "r") as f:
            addr = h5py.h5o.get_info(f["features"].id).addr
        data = bytearray(path.read_bytes())
        data[addr : addr + 200] = np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
    elif kind == "missing dataset":
        finished_file(path, n=20)
        with h5py.File(path, "r+") as f:
            del f["split"]


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "empty file"),
        ("text", "not an HDF5 file"),
        ("other hdf5", "not a transferkit feature file"),
        ("truncated", "truncated HDF5 file"),
        ("truncated working", "truncated HDF5 file"),
        ("garbled metadata", "damaged"),
        ("garbled dataset header", "damaged"),
        ("missing dataset", "missing dataset"),
    ],
)
def test_unreadable_files_are_one_line_errors_everywhere(tmp_path, kind, message):
    path = tmp_path / "bad.h5"
    _damage(kind, path)
    with pytest.raises(TransferkitError, match=message) as err:
        _all_reads(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    for args in (
        ["inspect", str(path)],
        ["inspect", str(path), "--verify"],
        ["train", str(path), "-o", str(tmp_path / "m.safetensors")],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and "error:" in result.output and "Traceback" not in result.output


def test_writer_compression_option_is_checked(tmp_path):
    with pytest.raises(ValueError, match="compression must be one of"):
        FeatureWriter(tmp_path / "x.h5", feature_dim=4, label_names=["a", "b"], attrs={}, compression="zstd")


def test_reader_of_a_finished_file_is_unchanged_for_existing_callers(tmp_path):
    path = tmp_path / "f.h5"
    plan, feats = finished_file(path, n=50)
    with FeatureFile(path) as ff:
        assert ff.complete and ff.progress is None and ff.n_rows == 50
        assert list(ff.rows("test")) == list(np.flatnonzero(plan.split == 1))
        ff.require_complete()


def test_inspect_shows_what_an_incomplete_file_holds_and_how_to_finish_it(tmp_path):
    path = tmp_path / "w.h5"
    working_file(path, n=40, rows=30, skip=(4,))
    result = CliRunner().invoke(app, ["inspect", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert (
        f"29 rows x {DIM} features (float32), INCOMPLETE (30 of 40 images done; finish it with "
        f"`{shlex.join(['transferkit', 'extract', '/data', '-o', str(path), '--resume'])}`)" in result.output
    )
    assert "skipped 1 unreadable file(s)" in result.output
    result = CliRunner().invoke(app, ["inspect", str(path), "--json", "--verify"])
    info = __import__("json").loads(result.output)
    assert info["complete"] is False and info["progress"]["inputs_done"] == 30 and info["verify"]["ok"]
    result = CliRunner().invoke(app, ["train", str(path), "-o", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 1 and "incomplete feature file (30 of 40 images done)" in result.output
