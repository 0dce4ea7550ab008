"""The Ray worker: a long-lived actor that holds one backbone and turns shards of image paths into features.

The class is plain Python (no Ray import), so it can be tested and profiled without a cluster; the
driver wraps it with ``ray.remote`` at run time. Decoding and inference inside a worker run exactly
as in the single-process path (:func:`transferkit.engines.batches.feature_batches`: threaded decoding,
ordered batches, failures reported per image), so a shard's rows equal those of a local run.
"""

from __future__ import annotations

import os
import socket
import time

import numpy as np

from ..errors import TransferkitError


def _make_backbone_and_engine(backbone_kwargs: dict, *, device: str, threads: int, **engine_kwargs):
    """The one place a worker builds its backbone and inference engine; ``engine_kwargs`` come unchanged
    from :func:`transferkit.extract` (e.g. engine, precision). A graph already in the node's ONNX cache
    is opened without building the network (see :func:`transferkit.engines.backbone_and_engine`)."""
    from ..engines import backbone_and_engine

    kwargs = dict(backbone_kwargs)
    return backbone_and_engine(kwargs.pop("name"), **kwargs, device=device, threads=threads, **engine_kwargs)


class ShardWorker:
    """Holds the backbone; ``run`` extracts one shard. Heavy setup is lazy, so a restarted actor redoes it."""

    def __init__(self, *, backbone_kwargs: dict, engine_kwargs: dict, device: str, threads: int,
                 decode_workers: int, batch_size: int, dataset_root: str, spec_sha256: str):
        self.backbone_kwargs = dict(backbone_kwargs)  # create_backbone(**backbone_kwargs), as the driver did
        self.engine_kwargs = dict(engine_kwargs)
        self.device = device
        self.threads = max(1, int(threads))
        self.decode_workers = max(1, int(decode_workers))
        self.batch_size = int(batch_size)
        self.dataset_root = dataset_root
        self.spec_sha256 = spec_sha256
        self.host = socket.gethostname()
        self.backbone = None
        self.engine = None

    def _ready(self) -> None:
        if self.engine is not None:
            return
        from .spec import spec_sha256

        if not os.path.isdir(self.dataset_root):
            raise TransferkitError(
                f"worker on {self.host}: dataset folder {self.dataset_root} not found; every Ray node must see "
                "the images at the same path (shared storage)"
            )
        backbone, engine = _make_backbone_and_engine(self.backbone_kwargs, device=self.device, threads=self.threads,
                                                     **self.engine_kwargs)
        if spec_sha256(backbone.spec()) != self.spec_sha256:
            raise TransferkitError(
                f"worker on {self.host}: its {backbone.name} backbone (weights {backbone.weights_sha256[:12]}…) "
                "differs from the driver's; install the same transferkit and weights on every node"
            )
        self.backbone = backbone
        self.engine = engine

    def pid(self) -> int:
        """This worker's process id (answered at once, even while a shard is running)."""
        return os.getpid()

    def run(self, start: int, paths: list[str]) -> dict:
        """Features of ``paths`` (images ``start``.. of the dataset), with the positions that failed and why."""
        from ..engines.batches import feature_batches

        self._ready()
        t0 = time.perf_counter()
        index, feats, failures = [], [], []
        for positions, batch_feats, batch_failures in feature_batches(
                paths, self.backbone.preprocess, self.engine, self.batch_size, self.decode_workers, None):
            if positions:
                index.extend(start + p for p in positions)
                feats.append(np.asarray(batch_feats, dtype=np.float32))
            failures.extend((start + p, reason) for p, reason in batch_failures)
        dim = self.backbone.feature_dim
        return {
            "index": np.asarray(index, dtype=np.int64),
            "features": np.concatenate(feats) if feats else np.empty((0, dim), np.float32),
            "failures": failures,
            "engine": getattr(self.engine, "name", None),
            "calibration": getattr(self.engine, "calibration", None),  # int8: which quantised graph ran
            "host": self.host,
            "pid": os.getpid(),
            "seconds": time.perf_counter() - t0,
        }
