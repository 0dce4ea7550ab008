"""Extraction: every image of a dataset -> one feature row in an HDF5 file, with labels, split and provenance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .backbones import DEFAULT_MODEL, create_backbone
from .data import discover
from .data.discover import require_two_classes
from .data.layouts import dataset_split
from .data.split import SPLITS, STRATIFIED
from .engines import backbone_and_engine, resolve_batch_size
from .engines.batches import ProgressCallback, feature_batches  # noqa: F401  (their former home: still importable here)
from .errors import TransferkitError
from .extract_result import ExtractResult
from .store import LayeredFeatureWriter, open_features
from .store.lock import holds_output_lock
from .store.resume import ExtractionRun, resolve_mode


# ----------------------------------------------------------------------------------------------
def int8_attrs(engine) -> dict:
    """What a feature file records of an int8 engine's calibration (nothing for other precisions)."""
    calibration = getattr(engine, "calibration", None)
    if calibration is None:
        return {}
    return {"calibration": json.dumps(calibration, sort_keys=True), "int8_cosine_mean": calibration["cosine_mean"]}


def _request(**given) -> dict:
    """The settings a user gave that differ from :func:`extract`'s defaults (JSON-able), for the resume command."""
    import inspect

    defaults = {name: p.default for name, p in inspect.signature(extract).parameters.items()}
    out = {}
    for key, value in given.items():
        if value is None or value == defaults.get(key):
            continue
        out[key] = str(value) if isinstance(value, os.PathLike) else list(value) if isinstance(value, tuple) else value
    return out


@holds_output_lock("output")  # one writer per file, refused at once; a killed run's lock dies with it
def extract(
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    model: str = DEFAULT_MODEL,
    weights: str | None = None,
    layer: str | Sequence[str] | None = None,
    pool: str | None = None,
    image_size: int | tuple[int, int] | None = None,
    crop_pct: float | None = None,
    crop: bool | None = None,
    batch_size: int | str = 32,
    test_size: float = 0.25,
    seed: int = 42,
    workers: int | None = None,
    buffer_rows: int = 1000,
    overwrite: bool = False,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    engine: str = "auto",
    precision: str = "auto",
    resume: bool = False,
    update: bool = False,
    dtype: str | None = None,
    compression: str | None = None,
    ray: str | None = None,
    ray_workers: int | None = None,
    ray_cpus_per_worker: float = 1.0,
    ray_gpus_per_worker: float = 0.0,
    ray_shard_size: int = 256,
) -> ExtractResult:
    """Turn every image of ``data`` (class folders or a CSV manifest) into a feature row in ``output``.

    A dataset that comes split (train/valid/test folders, a manifest's ``split`` column, imagefolder
    metadata; see :mod:`transferkit.data.layouts`) keeps its split; otherwise ``test_size`` of each
    class is held out at random (``seed``).

    ``model``/``weights``/``layer``/``pool``/``image_size``/``crop_pct``/``crop``: see
    :func:`transferkit.backbones.create_backbone` (several layers: one dataset each, see docs/backbones.md).
    ``engine``/``device``/``precision``/``batch_size`` ("auto" allowed): see docs/engines.md.
    An existing ``output`` is never replaced unless ``overwrite``. ``resume`` continues an interrupted
    extraction (same settings, same files; the result equals an uninterrupted run); ``update`` keeps
    the rows of files still in the dataset and extracts only new ones. ``dtype`` "float16" halves the
    file; ``compression`` "lzf" or "gzip" shrinks it further. See docs/feature-store.md.
    ``ray``: run decoding and the backbone on a Ray cluster ("auto", "local" or an address; see
    docs/distributed.md), in shards of ``ray_shard_size`` images; ``resume`` then continues an
    interrupted distributed run, recomputing only its unfinished shards.
    """
    output = Path(output)
    if ray is None:
        mode = resolve_mode(output, overwrite=overwrite, resume=resume, update=update, dtype=dtype,
                            compression=compression)
    else:
        if update or dtype or compression:
            raise TransferkitError("--update, --dtype and --compression are not supported with --ray yet; "
                                   "run those without --ray")
        if output.exists() and not overwrite and not resume:
            raise TransferkitError(f"{output}: already exists; pass --overwrite to replace it, or choose another -o")
    if output.parent and not output.parent.exists():
        raise TransferkitError(f"{output.parent}: output folder does not exist")
    resolve_batch_size(batch_size, None)  # bad values fail before any work
    dataset = discover(data)
    require_two_classes(dataset, str(data))
    engine_request = engine
    int8 = str(precision).strip().lower() == "int8"
    if ray is not None and int8:
        raise TransferkitError("--precision int8 is not supported with --ray yet; run it without --ray")
    if ray is None:  # from the ONNX cache without PyTorch when an earlier run exported this backbone
        calibration = [dataset.absolute(s) for s in dataset.samples] if int8 else None
        backbone, engine = backbone_and_engine(model, weights=weights, layer=layer, pool=pool, image_size=image_size,
                                               crop_pct=crop_pct, crop=crop, engine=engine, device=device,
                                               precision=precision,
                                               calibration=calibration)
    else:  # the workers build the engine; the driver only resolves what they will run
        from .distributed import planned_engine

        backbone = create_backbone(
            model, weights=weights, layer=layer, pool=pool, image_size=image_size, crop_pct=crop_pct, crop=crop
        )
        engine = planned_engine(engine, device, precision, ray_gpus_per_worker)
    batch_size = resolve_batch_size(batch_size, engine, backbone.preprocess.input_size)
    labels = np.array([s.label for s in dataset.samples])
    split_source = dataset.split_source or STRATIFIED
    split = dataset_split(dataset, test_size, seed)
    # --test-size and --seed make the split only when the dataset does not bring one
    stratified = {"test_size": float(test_size), "seed": int(seed)} if split_source == STRATIFIED else {}
    attrs = {
        **backbone.spec(),
        "dataset_root": str(Path(dataset.root).resolve()),
        "data": str(Path(data).resolve()),  # the folder or CSV given, for the resume command
        "source": dataset.source,
        "split_source": split_source,
        **stratified,
        "n_images": len(dataset),
        "batch_size": int(batch_size),
        "engine": engine.name,
        "device": str(engine.device),
        "precision": engine.precision,
        **int8_attrs(engine),
        # the layers side by side in each row while extracting; finishing splits them into layers/<name>
        "layers": backbone.layers,
        # the settings as asked for, so an interrupted file can print the exact command that finishes it
        "request": json.dumps(
            _request(
                model=model,
                weights=None if backbone.weights == "default" else backbone.weights,
                layer=layer,
                pool=pool,
                image_size=image_size,
                crop_pct=crop_pct,
                crop=crop,
                batch_size=int(batch_size),
                test_size=test_size,
                seed=seed,
                engine=engine_request,
                device=device,
                precision=precision,
            )
        ),
    }
    if ray is not None:  # same dataset, split, backbone and provenance; shards computed on Ray workers
        from .distributed import RayOptions, run_on_ray

        options = RayOptions(
            address=ray,
            workers=ray_workers,
            cpus_per_worker=ray_cpus_per_worker,
            gpus_per_worker=ray_gpus_per_worker,
            shard_size=ray_shard_size,
        )
        return _about_dataset(
            run_on_ray(
                dataset=dataset,
                labels=labels,
                split=split,
                backbone=backbone,
                attrs=attrs,
                output=output,
                options=options,
                backbone_kwargs=dict(
                    name=model,
                    weights=weights,
                    layer=layer,
                    pool=pool,
                    image_size=image_size,
                    crop_pct=crop_pct,
                    crop=crop,
                ),
                engine_kwargs=dict(engine=engine_request, precision=engine.precision),
                make_writer=lambda path, file_attrs: LayeredFeatureWriter(
                    path,
                    layers=backbone.layers,
                    feature_dim=backbone.feature_dim,
                    label_names=dataset.class_names,
                    attrs={k: v for k, v in file_attrs.items() if k != "layers"},
                    buffer_rows=buffer_rows,
                ),
                batch_size=batch_size,
                workers=workers,
                overwrite=overwrite,
                resume=resume,
                progress=progress,
            ),
            dataset,
        )
    start = time.perf_counter()
    with ExtractionRun(
        output,
        mode=mode,
        dataset=dataset,
        labels=labels,
        split=split,
        attrs=attrs,
        feature_dim=backbone.feature_dim,
        dtype=dtype,
        compression=compression,
        buffer_rows=buffer_rows,
        test_size=test_size,
        seed=seed,
    ) as run:
        paths = run.todo_paths(dataset.root)
        for positions, feats, failures in feature_batches(
            paths, backbone.preprocess, engine, batch_size, workers, run.progress(progress)
        ):
            run.add(positions, feats, failures)
    seconds = time.perf_counter() - start
    with open_features(output) as ff:
        written_split = ff.split
        skipped = ff.skipped
        n_rows = ff.n_rows
    return _about_dataset(
        ExtractResult(
            path=output,
            n_images=len(dataset),
            n_rows=n_rows,
            skipped=skipped,
            seconds=seconds,
            class_counts=dataset.counts(),
            n_train=int((written_split == 0).sum()),
            n_test=int((written_split == 1).sum()),
            status=run.status,
            n_processed=len(paths),
            rows_before=run.rows_before,
            n_added=run.n_added,
            n_removed=run.n_removed,
            ignored=list(dataset.ignored),
        ),
        dataset,
    )


def _about_dataset(result: ExtractResult, dataset) -> ExtractResult:
    """Fill in what the result says about the dataset: the val rows, where the split came from, notes."""
    with open_features(result.path) as ff:
        result.n_val = int((ff.split == SPLITS["val"]).sum())
        result.split_source = ff.attrs.get("split_source") or STRATIFIED
    result.notes, result.warnings = list(dataset.notes), list(dataset.warnings)
    return result
