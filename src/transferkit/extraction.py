"""Extraction: every image of a dataset -> one feature row in an HDF5 file, with labels, split and provenance."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Sequence

from .backbones import DEFAULT_MODEL, create_backbone
from .data import discover
from .data.discover import require_two_classes
from .data.layouts import dataset_split
from .data.split import SPLITS, STRATIFIED
from .engines import backbone_and_engine, resolve_batch_size
from .engines.batches import ProgressCallback, feature_batches  # noqa: F401  (their former home: still importable here)
from .engines.factory import INT8
from .errors import TransferkitError
from .extract_result import ExtractResult
from .store import open_features
from .store.lock import holds_output_lock
from .store.mode import resolve_mode
from .store.session import ExtractionRun


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
    docs/distributed.md), in shards of ``ray_shard_size`` images handed back in order into the same
    working file: everything above (resume, update, dtype, compression, int8) works alike, and the rows
    equal a local run's.
    """
    output = Path(output)
    mode = resolve_mode(output, overwrite=overwrite, resume=resume, update=update, dtype=dtype,
                        compression=compression)
    on_ray = None
    if ray is not None:
        from .distributed import RayOptions, RayReport, WorkerSetup, ray_batches

        on_ray = RayOptions(address=ray, workers=ray_workers, cpus_per_worker=ray_cpus_per_worker,
                            gpus_per_worker=ray_gpus_per_worker, shard_size=ray_shard_size)
        on_ray.validate()
    if output.parent and not output.parent.exists():
        raise TransferkitError(f"{output.parent}: output folder does not exist")
    resolve_batch_size(batch_size, None)  # bad values fail before any work
    dataset = discover(data)
    require_two_classes(dataset, str(data))
    net = dict(weights=weights, layer=layer, pool=pool, image_size=image_size, crop_pct=crop_pct, crop=crop)
    calibration = _calibration(dataset) if str(precision).strip().lower() == INT8 else None
    backbone, engine_used = _backbone_and_engine(model, net, engine, device, precision, calibration, on_ray)
    batch_size = resolve_batch_size(batch_size, engine_used, backbone.preprocess.array_size)
    split = dataset_split(dataset, test_size, seed)
    request = _request(model=model, **{**net, "weights": None if backbone.weights == "default" else backbone.weights},
                       batch_size=int(batch_size), test_size=test_size, seed=seed, engine=engine, device=device,
                       precision=precision)
    attrs = _attrs(dataset, data, backbone, engine_used, batch_size, test_size, seed, request)
    report = None
    start = time.perf_counter()
    with ExtractionRun(output, mode=mode, dataset=dataset, split=split, attrs=attrs, feature_dim=backbone.feature_dim,
                       dtype=dtype, compression=compression, buffer_rows=buffer_rows) as run:
        paths = run.todo_paths(dataset.root)
        if on_ray is None:
            batches = feature_batches(paths, backbone.preprocess, engine_used, batch_size, workers,
                                      run.progress(progress))
        else:  # the same batches, computed shard by shard on Ray workers and handed over in order
            setup = WorkerSetup(backbone_kwargs={"name": model, **net},
                                engine_kwargs={"engine": engine, "precision": engine_used.precision,
                                               "calibration": calibration},
                                batch_size=batch_size, decode_workers=workers, dataset_root=str(dataset.root),
                                spec=backbone.spec(), engine=engine_used)
            report = RayReport(on_ray.shard_size, on_ray.cpus_per_worker, on_ray.gpus_per_worker)
            batches = ray_batches([str(p) for p in paths], setup, on_ray, run.progress(progress), report)
        with contextlib.closing(batches):  # stops the Ray workers at once if the run fails or is interrupted
            for positions, feats, failures in batches:
                run.add(positions, feats, failures)
        if report is not None:
            run.finish_attrs["ray"] = json.dumps(report.to_dict())
    return _result(output, dataset, run, len(paths), time.perf_counter() - start, report)


def _calibration(dataset) -> list:
    """The images int8 is calibrated on (a deterministic sample: the same on the driver and every worker)."""
    from .engines.onnx_int8 import calibration_sample

    return [str(p) for p in calibration_sample([dataset.absolute(s) for s in dataset.samples])]


def _backbone_and_engine(model, net: dict, engine: str, device: str, precision: str, calibration, on_ray):
    """The backbone, and the engine that runs it (on Ray: what the workers will run, resolved here without
    building it unless int8 must be calibrated, which the driver does once for every worker)."""
    from .distributed import planned_engine

    if on_ray is None or calibration is not None:
        if on_ray is not None:
            planned_engine(engine, device, precision, on_ray.gpus_per_worker)  # refuses int8 on GPU workers
            device = "cpu"
        # from the ONNX cache without PyTorch when an earlier run exported this backbone
        return backbone_and_engine(model, **net, engine=engine, device=device, precision=precision,
                                   calibration=calibration)
    return create_backbone(model, **net), planned_engine(engine, device, precision, on_ray.gpus_per_worker)


def _attrs(dataset, data, backbone, engine, batch_size: int, test_size: float, seed: int, request: dict) -> dict:
    """The file's provenance: backbone, dataset, split, engine, and the settings as asked for."""
    split_source = dataset.split_source or STRATIFIED
    # --test-size and --seed make the split only when the dataset does not bring one
    stratified = {"test_size": float(test_size), "seed": int(seed)} if split_source == STRATIFIED else {}
    return {
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
        "request": json.dumps(request),
    }


def _result(output: Path, dataset, run: ExtractionRun, n_processed: int, seconds: float, report) -> ExtractResult:
    with open_features(output) as ff:
        written_split = ff.split
        return ExtractResult(
            path=output,
            n_images=len(dataset),
            n_rows=ff.n_rows,
            skipped=ff.skipped,
            seconds=seconds,
            class_counts=dataset.counts(),
            n_train=int((written_split == SPLITS["train"]).sum()),
            n_test=int((written_split == SPLITS["test"]).sum()),
            n_val=int((written_split == SPLITS["val"]).sum()),
            split_source=ff.attrs.get("split_source") or STRATIFIED,
            status=run.status,
            n_processed=n_processed,
            rows_before=run.rows_before,
            n_added=run.n_added,
            n_removed=run.n_removed,
            notes=list(dataset.notes),
            warnings=list(dataset.warnings),
            ignored=list(dataset.ignored),
            ray=None if report is None else report.to_dict(),
        )
