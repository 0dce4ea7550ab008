"""The pieces of a distributed extraction that need no cluster: shards, part files, resume checks, combine.

The worker class is plain Python, so here it runs in-process; tests/test_ray.py runs it on Ray.
"""

import json
import os

import h5py
import numpy as np
import pytest

import transferkit as tk
from transferkit.backbones import create_backbone
from transferkit.data import discover, stratified_split
from transferkit.distributed import PartsDir, make_shards
from transferkit.distributed.combine import combine_parts
from transferkit.distributed.spec import spec_sha256
from transferkit.distributed.worker import ShardWorker
from transferkit.errors import TransferkitError
from transferkit.store import FeatureWriter


def test_shards_are_contiguous_ranges_in_dataset_order():
    shards = make_shards(10, 4)
    assert [(s.start, s.stop) for s in shards] == [(0, 4), (4, 8), (8, 10)]
    assert [s.index for s in shards] == [0, 1, 2] and shards[-1].size == 2
    assert make_shards(0, 4) == []
    with pytest.raises(TransferkitError, match="at least 1"):
        make_shards(10, 0)


def _result(start, n, dim=3):
    return {"index": np.arange(start, start + n), "features": np.full((n, dim), start, np.float32),
            "failures": [(start + n, "empty file (0 bytes)")], "host": "h", "pid": 1, "seconds": 0.1}


def test_parts_are_atomic_and_resume_refuses_other_settings(tmp_path):
    out = tmp_path / "f.h5"
    settings = {"model": "efficientnet_lite0", "seed": 42, "shard_size": 4, "preprocess": {"input_size": (224, 224)}}
    parts = PartsDir(out)
    parts.open(settings, resume=False)
    shards = make_shards(10, 4)
    parts.write(shards[0], _result(0, 3), 3, run_id="first")
    assert parts.is_done(shards[0]) and not parts.is_done(shards[1])
    assert sorted(p.name for p in parts.path.iterdir()) == ["lock", "manifest.json", "part-000000.h5"]
    (parts.path / "part-000001.h5.tmp").write_bytes(b"half a part")  # what a killed driver leaves behind

    with pytest.raises(TransferkitError, match="another extraction is writing"):
        PartsDir(out).open(settings, resume=True)  # the lock is held (by this process's first handle)
    parts.close()

    for key, value, option in [("seed", 7, "--seed"), ("shard_size", 8, "--ray-shard-size")]:
        with pytest.raises(TransferkitError, match=f"used {option} = .*, this run asks for {value}"):
            PartsDir(out).open({**settings, key: value}, resume=True)
    again = PartsDir(out)
    again.open(json.loads(json.dumps(settings)), resume=True)  # tuples and lists compare equal via JSON
    assert again.is_done(shards[0]) and not (again.path / "part-000001.h5.tmp").exists()
    part = again.read(shards[0])
    assert part["index"].tolist() == [0, 1, 2] and part["failures"] == [(3, "empty file (0 bytes)")]
    again.remove()
    assert not again.path.exists()


def test_a_part_from_other_settings_does_not_count(tmp_path):
    out = tmp_path / "f.h5"
    parts = PartsDir(out)
    parts.open({"seed": 1}, resume=False)
    shard = make_shards(4, 4)[0]
    parts.write(shard, _result(0, 4), 3, run_id="r")
    with h5py.File(parts.part_path(shard), "r+") as f:
        f.attrs["fingerprint"] = "something else"
    assert not parts.is_done(shard)
    parts.remove()


def test_worker_shards_combined_equal_the_single_process_file(tmp_path, dataset_dir, extracted):
    """Shard-by-shard extraction + combine reproduces the single-process file row for row (no Ray involved)."""
    ds = discover(dataset_dir)
    labels = np.array([s.label for s in ds.samples])
    split = stratified_split(labels, 0.25, 42)
    spec = create_backbone("efficientnet_lite0").spec()  # what the driver would hand the workers
    with tk.open_features(extracted.path) as ref:
        ref_feats, ref_labels = ref.load()
        ref_paths, ref_split = ref.paths, ref.split
    worker = ShardWorker(backbone_kwargs={"name": "efficientnet_lite0"}, engine_kwargs={}, device="cpu", threads=1,
                         decode_workers=1, batch_size=5, dataset_root=str(dataset_dir), spec_sha256=spec_sha256(spec))
    assert worker.pid() == os.getpid()
    out = tmp_path / "combined.h5"
    parts = PartsDir(out)
    parts.open({"seed": 42}, resume=False)
    shards = make_shards(len(ds), 7)
    paths = [str(ds.absolute(s)) for s in ds.samples]
    for shard in reversed(shards):  # finishing order does not matter
        parts.write(shard, worker.run(shard.start, paths[shard.start:shard.stop]), 1280, run_id="r")
    def make_writer(path, attrs):
        return FeatureWriter(path, feature_dim=1280, label_names=ds.class_names, attrs=attrs, buffer_rows=6)

    n_rows = combine_parts(parts, shards, out, make_writer=make_writer, attrs={"model": spec["model"], "seed": 42},
                           labels=labels, split=split, rel_paths=[s.path for s in ds.samples])
    parts.remove()
    with tk.open_features(out) as ff:
        assert ff.complete and n_rows == ff.n_rows == len(ref_paths)
        feats, got_labels = ff.load()
        assert ff.paths == ref_paths and (ff.split == ref_split).all() and (got_labels == ref_labels).all()
        np.testing.assert_allclose(feats, ref_feats, atol=1e-5, rtol=0)


def test_worker_refuses_a_different_backbone_or_a_missing_dataset(tmp_path, dataset_dir):
    kw = dict(backbone_kwargs={"name": "efficientnet_lite0"}, engine_kwargs={}, device="cpu", threads=1,
              decode_workers=1, batch_size=4)
    with pytest.raises(TransferkitError, match="not found; every Ray node must see the images"):
        ShardWorker(**kw, dataset_root=str(tmp_path / "elsewhere"), spec_sha256="x").run(0, [])
    with pytest.raises(TransferkitError, match="differs from the driver's"):
        ShardWorker(**kw, dataset_root=str(dataset_dir), spec_sha256="not the driver's").run(0, [])


def test_unsupported_ray_options_and_leftover_parts_are_explained(tmp_path, dataset_dir):
    # (a plain --resume is the crash-safe single-process resume, see test_resume.py)
    with pytest.raises(TransferkitError, match="--update, --dtype and --compression are not supported with --ray"):
        tk.extract(dataset_dir, tmp_path / "f.h5", ray="local", update=True)
    out = tmp_path / "g.h5"
    leftover = PartsDir(out)
    leftover.open({"seed": 1}, resume=False)
    leftover.close()
    with pytest.raises(TransferkitError, match="pass --resume to continue it, or --overwrite"):
        tk.extract(dataset_dir, out, ray="local")
    with pytest.raises(TransferkitError, match="--ray-shard-size must be at least 1"):
        tk.extract(dataset_dir, out, ray="local", ray_shard_size=0, overwrite=True)
