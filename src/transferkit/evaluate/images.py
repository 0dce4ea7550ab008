"""Scoring a model on the images of a dataset (a class-folder tree or a CSV manifest) instead of a feature
file: the split is made again with the test size and seed the model records (or taken from the dataset's
own split folders / split column, as ``extract`` does), and every picture goes
through the model's own backbone — the fine-tuned one for a fine-tuned model — with the exact
preprocessing ``predict`` replays. A frozen model and a fine-tuned one are thus scored the same way, on
the same test images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import TransferkitError


def is_image_data(path: str | os.PathLike) -> bool:
    """A dataset of images (folder or .csv manifest) rather than a feature file."""
    p = Path(path)
    return p.is_dir() or p.suffix.lower() == ".csv"


def recorded_split(model) -> tuple[float, int]:
    """(test_size, seed) the model's training data was split with."""
    training = model.training or {}
    for source in (training, training.get("feature_file") or {}):
        if "test_size" in source and "seed" in source:
            return float(source["test_size"]), int(source["seed"])
    raise TransferkitError(f"{model.path or 'model'}: does not record the train/test split it was trained with; "
                           "evaluate it on a feature file instead")


def evaluate_images(model, data: str | os.PathLike, split: str = "test", *, html: str | os.PathLike | None = None,
                    batch_size: int | str = 32, workers: int | None = None, engine: str = "auto",
                    device: str = "auto", precision: str = "auto", progress=None) -> dict:
    """Metrics of ``model`` on ``split`` ("test" or "train") of the images in ``data``."""
    from ..data import discover
    from ..data.layouts import dataset_split
    from ..engines.batches import feature_batches
    from ..prediction import model_engine
    from .metrics import classification_metrics

    if split not in ("train", "test"):
        raise TransferkitError(f"unknown split {split!r}; choose train or test")
    dataset = discover(data)
    test_size, seed = recorded_split(model) if dataset.split_source is None else (None, None)
    if dataset.class_names != list(model.class_names):
        raise TransferkitError(f"{data}: its classes differ from the model's ({len(dataset.class_names)} vs "
                               f"{len(model.class_names)}, or in another order)")
    labels = np.array([s.label for s in dataset.samples])
    marks = dataset_split(dataset, test_size, seed)  # the dataset's own split folders / column, else re-drawn
    rows = np.flatnonzero(marks == (1 if split == "test" else 0))
    if not len(rows):
        raise TransferkitError(f"{data}: the {split} split is empty")
    paths = [dataset.absolute(dataset.samples[r]) for r in rows]
    preprocess, engine, batch_size = model_engine(model, engine=engine, device=device, precision=precision,
                                                  batch_size=batch_size)
    proba = np.zeros((len(rows), len(model.class_names)), np.float32)
    ok = np.zeros(len(rows), bool)
    skipped = []
    for positions, feats, failures in feature_batches(paths, preprocess, engine, batch_size, workers, progress):
        skipped.extend((dataset.samples[rows[p]].path, reason) for p, reason in failures)
        if positions:
            proba[positions] = model.predict_proba(feats)
            ok[positions] = True
    y = labels[rows][ok]
    metrics = classification_metrics(y, proba[ok], list(model.class_names))
    metrics.update(split=split, data=str(Path(data)), n_skipped=len(skipped))
    if html is not None:
        metrics["html"] = str(write_images_report(
            html, model, dataset, [dataset.samples[r].path for r in rows[ok]], y, proba[ok], dict(metrics),
            split=split, split_counts={"train": int((marks == 0).sum()), "test": int((marks == 1).sum())},
            skipped=skipped))
    metrics["model"] = model.describe()
    return metrics


def write_images_report(path, model, dataset, rel_paths, y, proba, metrics, *, split, split_counts, skipped) -> Path:
    """The HTML report (see :mod:`.report`) of a model scored on images rather than a feature file."""
    from .calibration import reliability_bins
    from .report import (
        ReportData,
        _cv_results,
        _hyperparameter_rows,
        fill_thumbnails,
        find_history,
        misclassified,
        normalise_history,
        render_html,
    )

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise TransferkitError(f"{path.parent}: output folder does not exist")
    errors = misclassified(list(rel_paths), y, proba, list(model.class_names))
    fill_thumbnails(errors, Path(dataset.root))
    bb = model.backbone
    size = (bb.get("preprocess") or {}).get("input_size")
    kind = getattr(model.head, "kind", type(model.head).__name__)
    tuned = model.backbone_state is not None
    data = ReportData(
        title=f"{Path(dataset.root).name or 'dataset'} — {kind} on {bb.get('model', '?')}"
              + (" (fine-tuned)" if tuned else ""),
        metrics=metrics, split=split, split_counts=split_counts, errors=errors,
        skipped=[(str(p), str(r)) for p, r in skipped],
        history=normalise_history(find_history(model)), cv_results=_cv_results(model.head),
        images_root=str(dataset.root), reliability=reliability_bins(y, proba) if len(y) else None)
    data.summary = [
        ("dataset", f"{dataset.root} ({dataset.source}, {len(model.class_names)} classes)"),
        ("images", f"{split_counts['train'] + split_counts['test']} ({split_counts['train']} train, "
                   f"{split_counts['test']} test), and {len(skipped)} skipped as unreadable"),
        ("backbone", f"{bb.get('model', '?')}" + (f", input {size[0]}×{size[1]}" if size else "")
                     + (", fine-tuned (weights in the model file)" if tuned else "")),
        ("head", str(kind)),
        ("model file", str(model.path) if model.path else "(in memory)"),
        ("scored on", "the images (each run through the model's backbone)"),
    ]
    data.hyperparameters, data.solver_settings = _hyperparameter_rows(model)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(path)
    return path
