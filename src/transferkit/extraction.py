"""Extraction: every image of a dataset -> one feature row in an HDF5 file, with labels, split and provenance."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .backbones import DEFAULT_MODEL, PreprocessConfig, create_backbone
from .data import discover, stratified_split
from .data.discover import require_two_classes
from .engines import TorchEngine, iter_batches
from .errors import TransferkitError
from .store import FeatureWriter, open_features

Progress = Callable[[int, int], None]  # (images done, images total)


# ----------------------------------------------------------------------------------------------
@dataclass
class ExtractResult:
    path: Path
    n_images: int
    n_rows: int
    skipped: list[tuple[str, str]]
    seconds: float
    class_counts: dict[str, int]
    n_train: int
    n_test: int

    @property
    def images_per_second(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("nan")


def feature_batches(
    paths: Sequence[str | os.PathLike],
    preprocess: PreprocessConfig,
    engine,
    batch_size: int,
    workers: int | None,
    progress: Progress | None,
):
    """Yield (positions, features, failures) per batch, in input order."""
    done = 0
    for batch in iter_batches(paths, preprocess, batch_size=batch_size, workers=workers):
        feats = engine(batch.arrays) if batch.indices else None
        done += len(batch.indices) + len(batch.failures)
        if progress:
            progress(done, len(paths))
        yield batch.indices, feats, batch.failures


def extract(
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    model: str = DEFAULT_MODEL,
    weights: str | None = None,
    layer: str | None = None,
    pool: str = "avg",
    batch_size: int = 32,
    test_size: float = 0.25,
    seed: int = 42,
    workers: int | None = None,
    buffer_rows: int = 1000,
    overwrite: bool = False,
    device: str = "cpu",
    progress: Progress | None = None,
    resume: bool = False,
    ray: str | None = None,
    ray_workers: int | None = None,
    ray_cpus_per_worker: float = 1.0,
    ray_gpus_per_worker: float = 0.0,
    ray_shard_size: int = 256,
) -> ExtractResult:
    """Turn every image of ``data`` (class folders or a CSV manifest) into a feature row in ``output``.

    ``ray``: run decoding and the backbone on a Ray cluster ("auto", "local" or an address; see
    docs/distributed.md), in shards of ``ray_shard_size`` images; ``resume`` then continues an
    interrupted distributed run, recomputing only its unfinished shards.
    """
    output = Path(output)
    if resume and ray is None:
        raise TransferkitError("resume is only supported for distributed runs (--ray) in this version")
    if output.exists() and not overwrite and not resume:
        raise TransferkitError(f"{output}: already exists; pass --overwrite (overwrite=True) to replace it")
    if output.parent and not output.parent.exists():
        raise TransferkitError(f"{output.parent}: output folder does not exist")
    if batch_size < 1:
        raise TransferkitError(f"batch size must be at least 1, got {batch_size}")
    dataset = discover(data)
    require_two_classes(dataset, str(data))
    backbone = create_backbone(model, weights=weights, layer=layer, pool=pool)
    labels = np.array([s.label for s in dataset.samples])
    split = stratified_split(labels, test_size, seed)
    attrs = {
        **backbone.spec(),
        "dataset_root": str(Path(dataset.root).resolve()),
        "source": dataset.source,
        "test_size": float(test_size),
        "seed": int(seed),
        "n_images": len(dataset),
        "batch_size": int(batch_size),
        "engine": TorchEngine.name,
    }
    if ray is not None:  # same dataset, split, backbone and provenance; shards computed on Ray workers
        from .distributed import RayOptions, run_on_ray

        if device != "cpu":
            raise TransferkitError("with ray, give the workers GPUs with ray_gpus_per_worker (--ray-gpus-per-worker), not device")
        options = RayOptions(address=ray, workers=ray_workers, cpus_per_worker=ray_cpus_per_worker,
                             gpus_per_worker=ray_gpus_per_worker, shard_size=ray_shard_size)
        return run_on_ray(
            dataset=dataset, labels=labels, split=split, backbone=backbone, attrs=attrs, output=output, options=options,
            backbone_kwargs=dict(name=model, weights=weights, layer=layer, pool=pool),
            engine_kwargs={},  # device and threads come from the worker's Ray resources
            make_writer=lambda path, file_attrs: FeatureWriter(
                path, feature_dim=backbone.feature_dim, label_names=dataset.class_names, attrs=file_attrs,
                buffer_rows=buffer_rows),
            batch_size=batch_size, workers=workers, overwrite=overwrite, resume=resume, progress=progress)
    engine = TorchEngine(backbone.features, device=device)
    paths = [dataset.absolute(s) for s in dataset.samples]
    start = time.perf_counter()
    with FeatureWriter(output, feature_dim=backbone.feature_dim, label_names=dataset.class_names,
                       attrs=attrs, buffer_rows=buffer_rows) as writer:
        for positions, feats, failures in feature_batches(paths, backbone.preprocess, engine, batch_size, workers, progress):
            for pos, reason in failures:
                writer.add_skipped(dataset.samples[pos].path, reason)
            if positions:
                writer.add(feats, labels[positions], [dataset.samples[p].path for p in positions], split[positions])
        n_rows = writer.rows_written + writer.buffered_rows
    seconds = time.perf_counter() - start
    with open_features(output) as ff:
        written_split = ff.split
        skipped = ff.skipped
    return ExtractResult(
        path=output, n_images=len(dataset), n_rows=n_rows, skipped=skipped, seconds=seconds,
        class_counts=dataset.counts(), n_train=int((written_split == 0).sum()), n_test=int((written_split == 1).sum()),
    )


