"""The pieces of a distributed extraction that need no cluster: shards, handing finished shards out in
order, the worker, and the options Ray refuses up front.

The worker class is plain Python, so here it runs in-process; tests/test_ray.py runs it on Ray.
"""

import os

import numpy as np
import pytest

import transferkit as tk
from transferkit.backbones import create_backbone
from transferkit.cli._flags import worded
from transferkit.data import discover
from transferkit.distributed import InOrder, make_shards, planned_engine
from transferkit.distributed.spec import spec_sha256
from transferkit.distributed.worker import ShardWorker
from transferkit.errors import TransferkitError


def test_shards_are_contiguous_ranges_in_dataset_order():
    shards = make_shards(10, 4)
    assert [(s.start, s.stop) for s in shards] == [(0, 4), (4, 8), (8, 10)]
    assert [s.index for s in shards] == [0, 1, 2] and shards[-1].size == 2
    assert make_shards(0, 4) == []
    with pytest.raises(TransferkitError, match="at least 1"):
        make_shards(10, 0)


def test_finished_shards_are_handed_out_in_order_within_a_window():
    order = InOrder(window=3)
    assert order.may_send(2) and not order.may_send(3)  # shards 0..2 may be out at once
    order.put(2, "c")
    order.put(1, "b")
    assert list(order.ready()) == [] and order.held == 2  # waiting for shard 0
    order.put(0, "a")
    assert list(order.ready()) == [(0, "a"), (1, "b"), (2, "c")] and order.held == 0
    assert order.may_send(5) and not order.may_send(6)
    with pytest.raises(ValueError, match="twice"):
        order.put(1, "again")


def test_worker_shards_in_order_equal_the_single_process_rows(dataset_dir, extracted):
    """Shard by shard, finishing in any order and handed out in order, the rows equal a local run's, bit for bit."""
    ds = discover(dataset_dir)
    spec = create_backbone("efficientnet_lite0").spec()  # what the driver would hand the workers
    with tk.open_features(extracted.path) as ref:
        ref_feats, ref_paths = ref.load()[0], ref.paths
    worker = ShardWorker(backbone_kwargs={"name": "efficientnet_lite0"}, engine_kwargs={}, device="cpu", threads=1,
                         decode_workers=1, batch_size=3, dataset_root=str(dataset_dir), spec_sha256=spec_sha256(spec))
    assert worker.pid() == os.getpid()
    paths = [str(ds.absolute(s)) for s in ds.samples]
    shards = make_shards(len(paths), 7)
    order = InOrder(window=len(shards))
    rows, index = [], []
    for shard in reversed(shards):  # finishing order does not matter
        order.put(shard.index, worker.run(shard.start, paths[shard.start : shard.stop]))
        for _, result in order.ready():
            index.extend(result["index"].tolist())
            rows.append(result["features"])
    assert index == list(range(len(paths))) and [ds.samples[i].path for i in index] == ref_paths
    assert np.array_equal(np.concatenate(rows).view(np.uint8), ref_feats.view(np.uint8))


def test_worker_refuses_a_different_backbone_or_a_missing_dataset(tmp_path, dataset_dir):
    kw = dict(backbone_kwargs={"name": "efficientnet_lite0"}, engine_kwargs={}, device="cpu", threads=1,
              decode_workers=1, batch_size=4)
    with pytest.raises(TransferkitError, match="not found; every Ray node must see the images"):
        ShardWorker(**kw, dataset_root=str(tmp_path / "elsewhere"), spec_sha256="x").run(0, [])
    with pytest.raises(TransferkitError, match="differs from the driver's"):
        ShardWorker(**kw, dataset_root=str(dataset_dir), spec_sha256="not the driver's").run(0, [])


def test_what_the_workers_will_run_is_resolved_on_the_driver(tmp_path, dataset_dir):
    assert planned_engine("auto", "auto", "int8", 0).name == "onnxruntime"
    assert planned_engine("torch", "auto", "auto", 1).precision == "fp16"
    with pytest.raises(TransferkitError, match="^precision='int8' runs with ONNX Runtime on CPU workers") as e:
        planned_engine("auto", "auto", "int8", 1)
    assert str(e.value).endswith("use engine='auto' (or onnxruntime) and no ray_gpus_per_worker")  # Python's words
    assert worded(e.value).endswith("use --engine auto (or onnxruntime) and no --ray-gpus-per-worker")  # the CLI's
    with pytest.raises(TransferkitError, match="^ray_shard_size must be at least 1, got 0$") as e:
        tk.extract(dataset_dir, tmp_path / "f.h5", ray="local", ray_shard_size=0)
    assert worded(e.value) == "--ray-shard-size must be at least 1, got 0"
    assert not (tmp_path / "f.h5").exists()
