"""What the evaluation report shows, gathered as plain data: :class:`ReportData` from a trained model
and a feature file (:func:`collect`), the misclassified images, the training history, the
hyper-parameter search and the summary rows. :mod:`.report` renders it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..data.split import SPLITS, describe_split_source
from ..errors import TransferkitError
from .thumbnails import THUMBNAIL_SIZE, fill_thumbnails


@dataclass
class Misclassified:
    """One wrongly predicted image, as shown in the report."""

    path: str  # as stored in the feature file (relative to the dataset root)
    true: str
    predicted: str
    confidence: float  # probability of the predicted label
    p_true: float  # probability the model gave the true label
    rank_true: int  # 1-based rank of the true label among the model's scores
    top: list[tuple[str, float]] = field(default_factory=list)  # top-3 (label, probability)
    image: str = ""  # data URI: the thumbnail, or a placeholder
    image_found: bool = True
    image_problem: str = ""  # why the placeholder is shown
    neighbours: list = field(default_factory=list)  # nearest training images (see .nearest_train)


@dataclass
class ReportData:
    """Everything the HTML shows, as plain data."""

    title: str
    metrics: dict  # classification_metrics() output
    split: str = "test"
    summary: list[tuple[str, str]] = field(default_factory=list)  # (label, value) rows, in order
    hyperparameters: list[tuple[str, str]] = field(default_factory=list)  # what mattered for this fit
    solver_settings: list[tuple[str, str]] = field(default_factory=list)  # defaults that did not (collapsed)
    split_counts: dict[str, int] = field(default_factory=dict)
    errors: list[Misclassified] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    history: dict | None = None  # normalised per-epoch history (see normalise_history)
    cv_results: dict | None = None  # {"C": [...], "mean_accuracy": [...], ...} of a CV search
    cv_where: str = "cross-validated on the train split"  # what chose the hyper-parameters
    images_root: str = ""
    notes: list[str] = field(default_factory=list)  # warnings shown under the summary
    reliability: list[dict] | None = None  # confidence bins (see .calibration.reliability_bins)
    feature_map: dict | None = None  # {"coords", "y", "wrong", "method"} of the split's features
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z"))


def collect(
    model,
    features: str | os.PathLike,
    *,
    split: str = "test",
    images_root: str | os.PathLike | None = None,
    proba: np.ndarray | None = None,
    metrics: dict | None = None,
    thumbnail_size: int = THUMBNAIL_SIZE,
    workers: int | None = None,
) -> ReportData:
    """Gather a :class:`ReportData` from a trained model and a feature file."""
    from ..heads.model_file import as_model
    from ..store import open_features
    from .metrics import classification_metrics

    model = as_model(model)
    with open_features(features) as ff:
        ff.require_complete("report on")
        attrs = ff.attrs
        rows = ff.rows(split)
        all_paths = ff.paths
        paths = [all_paths[i] for i in rows]
        split_arr = ff.split
        skipped = ff.skipped
        layer = model.backbone.get("layer")
        X, y = ff.load(split, layers=layer)
        if proba is None:
            proba = model.predict_proba(X) if len(y) else np.zeros((0, len(model.class_names)))
        train_rows = ff.rows("train")
        train_paths, y_train = [all_paths[i] for i in train_rows], ff.labels[train_rows]
        near = _nearest_training(ff, X, y, proba, layer, rows if split == "train" else None, train_rows)
    names = list(model.class_names)
    if len(proba) != len(y):
        raise ValueError(f"proba has {len(proba)} rows but the {split} split has {len(y)}")
    if metrics is None:
        if not len(y):
            raise TransferkitError(f"{features}: the {split} split is empty; nothing to report on")
        metrics = classification_metrics(y, proba, names)

    recorded_root = str(attrs.get("dataset_root", ""))
    root = Path(images_root) if images_root is not None else Path(recorded_root)
    errors = misclassified(paths, y, proba, names)
    missing = fill_thumbnails(errors, root, size=thumbnail_size, workers=workers)
    extras = _insights(errors, paths, X, y, proba, near, y_train, train_paths, names)
    fill_thumbnails(extras.pop("neighbours"), root, size=thumbnail_size // 2, workers=workers)

    notes = []
    if missing:
        hint = "" if images_root is not None else " (if the images moved, pass --images-root / images_root=)"
        notes.append(f"{missing} of {len(errors)} misclassified images could not be read under {root}{hint}; "
                     "they show a placeholder.")
    head = model.head
    data = ReportData(
        title=(f"{Path(recorded_root).name or 'dataset'} — {getattr(head, 'kind', type(head).__name__)} on "
               f"{model.backbone.get('model', '?')}"),
        metrics=metrics,
        split=split,
        split_counts={name: int((split_arr == value).sum()) for name, value in SPLITS.items()},
        errors=errors,
        skipped=[(str(p), str(r)) for p, r in skipped],
        history=normalise_history(find_history(model)),
        cv_results=_cv_results(head),
        images_root=str(root),
        notes=notes,
        **extras,
    )
    if (model.training or {}).get("chosen_on_val"):
        data.cv_where = f"chosen on the val split, {model.training.get('n_val', '?')} rows"
    data.summary = _summary_rows(model, features, attrs, data)
    if getattr(model, "calibration", None):
        data.summary.append(("calibration", f"temperature scaling, T = {model.calibration['temperature']:.3f}"))
    data.hyperparameters, data.solver_settings = _hyperparameter_rows(model)
    return data


def _nearest_training(ff, X, y, proba, layer, split_rows, train_rows):
    """Nearest training images of the misclassified rows: (their row numbers, index, similarity)."""
    from .nearest_train import nearest_training

    ok = len(y) and len(proba) == len(y)  # a mismatch is reported by collect()
    wrong = np.flatnonzero(np.argmax(proba, axis=1) != y) if ok else np.zeros(0, np.int64)
    exclude = None
    if split_rows is not None:  # the train split is evaluated: an image is not its own neighbour
        exclude = np.searchsorted(train_rows, split_rows[wrong])
    return (wrong, *nearest_training(ff, X[wrong], layer, exclude))


def _insights(errors, paths, X, y, proba, near, y_train, train_paths, names) -> dict:
    """Nearest training images of each error, the reliability bins and the 2-D map of the split."""
    from .calibration import reliability_bins
    from .feature_map import embed_2d
    from .nearest_train import attach

    wrong, index, similarity = near
    at = {paths[i]: n for n, i in enumerate(wrong)}
    neighbours = attach(errors, at, index, similarity, train_paths, y_train, names)
    out = {"neighbours": neighbours, "reliability": reliability_bins(y, proba) if len(y) else None}
    if len(y) >= 3:
        coords, method = embed_2d(X)
        out["feature_map"] = {
            "coords": coords,
            "y": np.asarray(y),
            "wrong": np.argmax(proba, axis=1) != y,
            "method": method,
        }
    return out


def misclassified(paths: list[str], y: np.ndarray, proba: np.ndarray, names: list[str]) -> list[Misclassified]:
    """The wrongly predicted rows, most confident mistakes first (ties by path, so order is stable)."""
    y = np.asarray(y)
    pred = np.argmax(proba, axis=1) if len(proba) else np.zeros(0, int)
    out = []
    for i in np.flatnonzero(pred != y):
        p = proba[i]
        order = np.argsort(-p, kind="stable")
        out.append(
            Misclassified(
                path=paths[i],
                true=names[int(y[i])],
                predicted=names[int(pred[i])],
                confidence=float(p[pred[i]]),
                p_true=float(p[y[i]]),
                rank_true=int(np.flatnonzero(order == y[i])[0]) + 1,
                top=[(names[int(j)], float(p[j])) for j in order[:3]],
            )
        )
    out.sort(key=lambda m: (-m.confidence, m.path))
    return out


def find_history(model) -> object | None:
    """A per-epoch training history recorded by the head or the training record, if any."""
    head = model.head
    for candidate in (
        getattr(head, "history_", None),
        getattr(head, "history", None),
        (model.training or {}).get("history"),
    ):
        if candidate is not None and not callable(candidate):
            return candidate
    describe = getattr(head, "describe", None)
    if callable(describe):
        return describe().get("history")
    return None


def normalise_history(history) -> dict | None:
    """Turn a recorded history into ``{"epoch": [...], "series": {name: [values]}, "best_epoch": n}``.

    Accepts a dict of per-epoch lists (``{"train_loss": [...], "val_accuracy": [...]}``), nested
    dicts (``{"train": {"loss": [...]}, "val": {...}}``) or a list of per-epoch dicts
    (``[{"epoch": 1, "train_loss": ..}, ...]``). Returns None when nothing plottable is there.
    """
    if history is None:
        return None
    best = None
    if isinstance(history, (list, tuple)):
        if not history or not all(isinstance(r, dict) for r in history):
            return None
        keys = [k for k in history[0]]
        history = {k: [r.get(k) for r in history] for k in keys}
    if not isinstance(history, dict):
        return None
    flat: dict[str, object] = {}
    for key, value in history.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}_{sub}"] = v
        else:
            flat[key] = value
    for key in ("best_epoch", "best_iteration", "stopped_epoch"):
        if isinstance(flat.get(key), (int, np.integer)) and key == "best_epoch":
            best = int(flat[key])
    series = {}
    for key, value in flat.items():
        if key in ("epoch", "epochs") or not isinstance(value, (list, tuple, np.ndarray)) or len(value) == 0:
            continue
        try:
            vals = [float(v) if v is not None else math.nan for v in value]
        except (TypeError, ValueError):
            continue
        series[key] = vals
    if not series:
        return None
    n = max(len(v) for v in series.values())
    epochs = flat.get("epoch") or flat.get("epochs")
    if not isinstance(epochs, (list, tuple, np.ndarray)) or len(epochs) != n:
        epochs = list(range(1, n + 1))
    return {"epoch": [int(e) for e in epochs], "series": series, "best_epoch": best}


def _cv_results(head) -> dict | None:
    cv = getattr(head, "cv_results_", None)
    if not isinstance(cv, dict):
        return None
    cv = dict(cv)
    if getattr(head, "C_", None) is not None:
        cv.setdefault("chosen_C", float(head.C_))
    return cv


# -- summary rows --------------------------------------------------------------------------------
def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"{', '.join(_fmt(v) for v in value[:8])}, … ({len(value)} values)"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _summary_rows(model, features, attrs: dict, data: ReportData) -> list[tuple[str, str]]:
    bb = model.backbone
    pre = bb.get("preprocess") or {}
    size = pre.get("input_size")
    counts = data.split_counts
    rows = [
        ("dataset", f"{attrs.get('dataset_root', '?')} ({attrs.get('source', '?')}, {len(model.class_names)} classes)"),
        (
            "images",
            f"{sum(counts.values())} ({counts.get('train', 0)} train, {counts.get('test', 0)} test"
            + (f", {counts['val']} val" if counts.get("val") else "")
            + f"), and {len(data.skipped)} skipped as unreadable",
        ),
        ("split from", describe_split_source(attrs)),
        ("backbone", f"{bb.get('model', '?')}" + (f", input {size[0]}×{size[1]}" if size else "")),
        ("layer", str(bb.get("layer", "?"))),
        ("pooling", str(bb.get("pool", "?"))),
        ("head", str(getattr(model.head, "kind", type(model.head).__name__))),
        ("model file", str(model.path) if model.path else "(in memory)"),
        ("feature file", str(Path(features))),
    ]
    if data.images_root != str(attrs.get("dataset_root", "")):
        rows.append(("images read from", data.images_root))
    if attrs.get("created"):
        rows.append(("features extracted", str(attrs["created"])))
    return rows


# Settings that did not shape this fit unless someone changed them: the optimiser's stopping rules, and
# for the linear heads the minibatch settings, which are used only when the train split is streamed.
_SOLVER_INTERNALS = {"max_iter", "tol", "n_jobs"}
_STREAMING_ONLY = {"batch_size", "max_epochs", "polish_iter"}


def _hyperparameter_rows(model) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(what mattered for this fit, the rest): the head's chosen hyper-parameters (describe()), its
    search grid and the settings given to it (get_params()), training rows, seed and time; then, for the
    collapsed part, solver internals left at their defaults."""
    import inspect

    rows, rest = [], []
    describe = getattr(model.head, "describe", None)
    if callable(describe):
        for key, value in describe().items():
            if key in ("head", "history") or isinstance(value, dict):
                continue
            rows.append((key, _fmt(value)))
    get_params = getattr(model.head, "get_params", None)
    if callable(get_params):
        chosen = {k for k, _ in rows}
        try:
            defaults = {k: p.default for k, p in inspect.signature(type(model.head).__init__).parameters.items()}
        except (TypeError, ValueError):
            defaults = {}
        streamed = bool((model.training or {}).get("out_of_core"))
        linear = getattr(model.head, "kind", "") in ("logreg", "linear-svm")
        for key, value in get_params().items():
            if key in chosen or (key == "random_state" and (model.training or {}).get("seed") == value):
                continue  # the seed is shown once, as "seed"
            internal = key in _SOLVER_INTERNALS or (linear and not streamed and key in _STREAMING_ONLY)
            at_default = key in defaults and _fmt(defaults[key]) == _fmt(value)
            (rest if internal and at_default else rows).append((key, _fmt(value)))
    for key in ("n_train", "seed", "seconds"):
        if key in (model.training or {}):
            rows.append(
                ({"n_train": "training rows", "seconds": "training seconds"}.get(key, key), _fmt(model.training[key]))
            )
    return rows, rest
