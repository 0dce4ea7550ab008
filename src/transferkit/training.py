"""Training a head on the train split of a feature file, and scoring it on the test split."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .backbones.backbone import spec_difference
from .data.split import SPLITS, STRATIFIED, describe_split_source
from .errors import TransferkitError
from .evaluate import classification_metrics, format_report
from .heads import TrainedModel
from .heads._common import check_folds
from .heads.model_file import as_model  # noqa: F401  (its former home: still importable here)
from .store import FeatureFile, open_features


# ----------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    model: TrainedModel
    metrics: dict  # on the test split
    report: str  # per-class text report on the test split
    seconds: float
    path: Path | None = None


def train(
    features: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    cv: int = 3,
    Cs: Iterable[float] | None = None,
    class_weight: str | None = None,
    seed: int = 42,
    n_jobs: int | None = None,
    layer: str | Iterable[str] | None = None,
    head: str = "logreg",
    head_params: dict | None = None,
    max_memory: str | int | None = None,
    overwrite: bool = False,
    calibrate: str | None = None,
) -> TrainResult:
    """Fit a head (``logreg``, ``linear-svm``, ``mlp``, ``knn`` or ``auto``) on the train split; score it on the
    test split.

    ``Cs`` is the C grid of logreg/linear-svm; ``head_params`` other options of the head (see
    docs/heads.md). With ``max_memory`` ("2GB"), a train split that does not fit is streamed from
    the file in chunks (logreg, linear-svm, mlp) instead of being loaded. ``layer``: which of the
    file's layers to train on: None (the ``features`` dataset), a name, or several names
    (concatenated in that order). ``calibrate="temperature"``: fit one temperature on out-of-fold
    logits of the chosen head (see :mod:`transferkit.heads.calibration`); it is stored in the model
    file and used by predict, evaluate and export. An existing ``output`` is refused unless ``overwrite``.

    A file whose dataset came split three ways (train/val/test) has val rows: then C / k are chosen
    on the val split instead of by CV on the train split (one predefined fold, as scikit-learn's
    ``PredefinedSplit``) and the final head is fitted on train + val; the test split stays untouched
    for the score. (Streamed training out of core keeps its held-out fold of the train split.)
    """
    from .heads import OUT_OF_CORE_HEADS, make_head
    from .heads.streaming import FileSource, fits_in_memory
    from .store.budget import parse_size

    if calibrate not in (None, "temperature"):
        raise TransferkitError(f"calibrate must be 'temperature' (got {calibrate!r})")
    if output is not None and Path(output).exists() and not overwrite:
        raise TransferkitError(
            f"{output}: already exists; pass --overwrite (overwrite=True) to replace it, or choose another -o"
        )
    start = time.perf_counter()
    params = dict(head_params or {})
    if Cs is not None and head in ("logreg", "linear-svm"):
        params["Cs"] = tuple(Cs)
    estimator = make_head(head, cv=cv, class_weight=class_weight, random_state=seed, n_jobs=n_jobs, **params)
    budget = parse_size(max_memory) if max_memory is not None else None
    with open_features(features) as ff:
        ff.require_complete("train on")
        ff.require_intact("train on")
        class_names = ff.label_names
        layer = layer if layer is None or isinstance(layer, str) else list(layer)
        spec = ff.backbone_spec(layer)
        provenance = {k: v for k, v in ff.attrs.items() if k not in ("preprocess",)}
        n_train = len(ff.rows("train"))
        n_val = ff.count("val")
        dim = ff.feature_dim if layer is None else sum(int(c["dim"]) for c in ff.select_layers(layer))
        out_of_core = not fits_in_memory(n_train + n_val, dim, budget)
        if out_of_core:
            if calibrate:
                raise TransferkitError(
                    f"{features}: --calibrate needs the train split in memory "
                    f"(raise --max-memory above {n_train * dim * 4 / 1e9:.2f} GB)"
                )
            if head not in OUT_OF_CORE_HEADS:
                raise TransferkitError(
                    f"{features}: the train split ({n_train} x {dim} float32, {n_train * dim * 4 / 1e9:.2f} GB) does "
                    "not "
                    f"fit --max-memory {max_memory}; the {head} head needs it in memory "
                    f"(logreg, linear-svm and mlp can stream it)"
                )
            source = FileSource(ff, "train", max_memory=budget, layers=layer)
            y = source.labels
            if len(np.unique(y)) < 2:
                raise TransferkitError(
                    f"{features}: the train split has only one class; a classifier needs at least two"
                )
            _check_every_class_trained(features, y, class_names)
            estimator.fit_stream(source)
            seconds = time.perf_counter() - start
            test_rows = FileSource(ff, "test", chunk_rows=source.chunk_rows, layers=layer)  # reads only nearby rows
            parts = [(estimator.predict_proba(Xc), yc) for Xc, yc, _ in test_rows.chunks()]
            y_test = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
            proba = np.concatenate([p[0] for p in parts]) if parts else None
        else:
            X, y = ff.load("train", layers=layer)
            X_test, y_test = ff.load("test", layers=layer)
            if len(np.unique(y)) < 2:
                raise TransferkitError(
                    f"{features}: the train split has only one class; a classifier needs at least two"
                )
            if n_val:  # choose hyper-parameters on the val split; fit the final head on train + val
                X, y, folds = _with_val_fold(ff, X, y, layer)
                estimator = make_head(
                    head, cv=folds, class_weight=class_weight, random_state=seed, n_jobs=n_jobs, **params
                )
            _check_every_class_trained(features, y, class_names)
            check_folds(y, folds if n_val else cv, class_names)  # names the class in the message
            estimator.fit(X, y)
            seconds = time.perf_counter() - start
            proba = estimator.predict_proba(X_test) if len(y_test) else None
    record = {
        "features": str(Path(features).resolve()),
        "n_train": int(len(y)),
        "n_test": int(len(y_test)),
        "split_source": provenance.get("split_source") or "stratified",
        # the val rows join the fit; they choose C / k unless streamed (own held-out fold) or mlp (no search)
        "n_val": int(n_val) if not out_of_core else 0,
        "chosen_on_val": bool(n_val) and not out_of_core and head != "mlp",
        "seed": seed,
        "seconds": round(seconds, 3),
        "feature_file": provenance,
        "head": head,
        "out_of_core": bool(out_of_core),
    }
    if budget is not None:
        record["max_memory"] = int(budget)
    if head == "auto":
        record["auto"] = estimator.results_
        estimator = estimator.best_estimator_
    if hasattr(estimator, "history_"):
        record["history"] = estimator.history_
    model = TrainedModel(head=estimator, class_names=class_names, backbone=spec, training=record)
    if calibrate:
        from .heads.calibration import calibrate_temperature

        model.calibration = calibrate_temperature(estimator, X, y, len(class_names), cv=cv, random_state=seed)
        if proba is not None:
            proba = model.predict_proba(X_test)
        record["seconds_calibration"] = round(time.perf_counter() - start - seconds, 3)
    if output is not None:
        model.save(output)
    if len(y_test):
        metrics = classification_metrics(y_test, proba, class_names)
        report = format_report(y_test, proba, class_names)
    else:
        metrics, report = {"n_test": 0}, "(no test split: extract with --test-size > 0 to score the model)"
    return TrainResult(
        model=model, metrics=metrics, report=report, seconds=seconds, path=Path(output) if output is not None else None
    )


def _with_val_fold(ff: FeatureFile, X: np.ndarray, y: np.ndarray, layer):
    """Train rows then val rows, and the one predefined fold that fits on the first and scores on the second."""
    from sklearn.model_selection import PredefinedSplit

    X_val, y_val = ff.load("val", layers=layer)
    fold = np.concatenate([np.full(len(y), -1), np.zeros(len(y_val), int)])  # -1: never held out
    return np.concatenate([X, X_val]), np.concatenate([y, y_val]), PredefinedSplit(fold)


def _check_every_class_trained(features, y: np.ndarray, class_names: list[str]) -> None:
    """A class with no training rows cannot be predicted (and would shift the probability columns)."""
    missing = [name for i, name in enumerate(class_names) if not np.any(y == i)]
    if missing:
        raise TransferkitError(
            f"{features}: class {missing[0]!r} has no rows in the train split"
            + (f" (nor {len(missing) - 1} other class(es))" if len(missing) > 1 else "")
            + "; a head cannot learn it: add training images for it, or remove it from the dataset and extract again"
        )


def evaluate(
    model: TrainedModel | str | os.PathLike,
    features: str | os.PathLike,
    split: str = "test",
    *,
    html: str | os.PathLike | None = None,
    images_root: str | os.PathLike | None = None,
) -> dict:
    """Metrics of ``model`` on ``split`` of a feature file made with the same backbone, or of the images
    of a dataset (a folder or CSV manifest, split again as the model records; see
    :mod:`transferkit.evaluate.images`) — the only way to score a fine-tuned model.

    ``html``: also write the self-contained HTML report there (see :mod:`transferkit.evaluate.report`);
    ``images_root`` replaces the recorded dataset root when the images have moved.
    """
    if split not in SPLITS:
        raise TransferkitError(f"split must be one of {', '.join(SPLITS)} (got {split!r})")
    model = as_model(model)
    from .evaluate.images import evaluate_images, is_image_data

    if is_image_data(features):  # a folder or CSV manifest: score the images themselves
        return evaluate_images(model, features, split, html=html)
    if model.backbone_state is not None:
        raise TransferkitError(
            f"{model.path or 'model'}: holds a fine-tuned backbone, but {features} holds frozen-backbone features; "
            "evaluate it on the images instead (transferkit evaluate MODEL DATA, DATA the image folder or CSV)"
        )
    with open_features(features) as ff:
        ff.require_complete("evaluate on")
        ff.require_intact("evaluate on")
        layer = model.backbone.get("layer")
        _check_same_backbone(model, ff, layer)
        if ff.label_names != model.class_names:
            raise TransferkitError(
                f"{features}: its classes differ from the model's ({len(ff.label_names)} vs {len(model.class_names)})"
            )
        X, y = ff.load(split, layers=layer)
        attrs = ff.attrs
    if not len(y):
        raise TransferkitError(f"{features}: the {split} split is empty")
    proba = model.predict_proba(X)
    metrics = classification_metrics(y, proba, model.class_names)
    metrics["split"] = split
    metrics["split_source"] = attrs.get("split_source") or STRATIFIED
    metrics["split_from"] = describe_split_source(attrs)
    if html is not None:
        from .evaluate.report import write_report

        metrics["html"] = str(
            write_report(
                html, model, features, split=split, images_root=images_root, proba=proba, metrics=dict(metrics)
            )
        )
    metrics["model"] = model.describe()
    return metrics


def _check_same_backbone(model: TrainedModel, ff: FeatureFile, layer=None) -> None:
    spec = ff.backbone_spec(layer)
    key = spec_difference(spec, model.backbone)
    if key is not None:
        raise TransferkitError(
            f"{ff.path}: its features were made with a different {key} than the model's "
            f"({spec[key]!r} vs {model.backbone.get(key)!r})"
        )


# Public for the other verbs that read a model with a feature file (audit).
check_same_backbone = _check_same_backbone
