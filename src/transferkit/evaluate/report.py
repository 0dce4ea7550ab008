"""The evaluation report: one self-contained HTML file that opens from disk with no network.

It holds a summary (dataset, splits, skipped files, backbone, head, chosen hyper-parameters, scores),
the per-class table (sortable), the confusion matrix as an HTML heatmap (row-normalised colours, a
hover title on every non-empty cell, readable at 100+ classes), the most confused pairs, every
misclassified image as a thumbnail made from the original file (sorted by confidence, most confident
mistakes first: those are often label errors), training curves when the head recorded a per-epoch
history, the hyper-parameter search when it recorded one, and the skipped files with their reasons.

Images and plots are inlined as ``data:`` URIs. A thumbnail whose file is missing or unreadable
becomes a placeholder saying why; it never stops the report.

Layers: :func:`write_report` collects everything from a model and a feature file into a
:class:`ReportData` (:func:`collect`), and :func:`render_html` turns that into HTML, so the renderer
can be exercised with synthetic data (e.g. 101 classes) without extracting anything.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..atomicfile import atomic_write_text
from ..data.split import SPLITS, describe_split_source
from ..errors import TransferkitError
from .png import png_data_uri

THUMBNAIL_SIZE = 160  # longest side, pixels
TOP_CONFUSIONS = 15


# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
def write_report(
    path: str | os.PathLike,
    model,
    features: str | os.PathLike,
    *,
    split: str = "test",
    images_root: str | os.PathLike | None = None,
    proba: np.ndarray | None = None,
    metrics: dict | None = None,
    thumbnail_size: int = THUMBNAIL_SIZE,
    workers: int | None = None,
) -> Path:
    """Write the HTML report of ``model`` on ``split`` of ``features`` to ``path``; return the path.

    ``images_root`` replaces the dataset root recorded in the feature file when the images moved.
    ``proba``/``metrics`` may be passed when the caller already computed them (as ``evaluate`` does).
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise TransferkitError(f"{path.parent}: output folder does not exist")
    data = collect(model, features, split=split, images_root=images_root, proba=proba, metrics=metrics,
                   thumbnail_size=thumbnail_size, workers=workers)
    text = render_html(data)
    atomic_write_text(path, text)
    return path


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


# -- images --------------------------------------------------------------------------------------
def fill_thumbnails(
    errors: list[Misclassified], root: Path, size: int = THUMBNAIL_SIZE, workers: int | None = None
) -> int:
    """Set each error's ``image`` to a thumbnail of its original file (or a placeholder); return how many failed."""
    from ..engines.pipeline import available_cpus

    if not errors:
        return 0
    with ThreadPoolExecutor(max_workers=workers or min(8, available_cpus())) as pool:
        results = list(pool.map(lambda m: thumbnail(root / m.path, size), errors))
    failed = 0
    for m, (uri, problem) in zip(errors, results):
        m.image, m.image_problem, m.image_found = uri, problem, not problem
        failed += bool(problem)
    return failed


def thumbnail(path: Path, size: int = THUMBNAIL_SIZE) -> tuple[str, str]:
    """(data URI, problem): a JPEG thumbnail of ``path``, or a placeholder SVG and why."""
    from PIL import Image

    from ..data.decode import DecodeError, load_image

    try:
        img = load_image(path, min_size=size)
    except DecodeError as exc:
        reason = str(exc)
        return placeholder("image not found" if reason == "file not found" else "cannot read image", size), reason
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), ""


def placeholder(text: str, size: int = THUMBNAIL_SIZE) -> str:
    """A grey square with ``text``, as an SVG data URI with a definite size (so it has a naturalWidth)."""
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
        f'<rect width="100%" height="100%" fill="#e5e7eb"/>'
        f'<path d="M{size * 0.3:.0f} {size * 0.3:.0f}L{size * 0.7:.0f} {size * 0.7:.0f}M{size * 0.7:.0f} '
        f'{size * 0.3:.0f}L{size * 0.3:.0f} {size * 0.7:.0f}" '
        f'stroke="#9ca3af" stroke-width="4"/>'
        f'<text x="50%" y="88%" font-family="sans-serif" font-size="{max(10, size // 12)}" fill="#4b5563" '
        f'text-anchor="middle">{html.escape(text)}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


# -- training history ----------------------------------------------------------------------------
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


def _is_loss(name: str) -> bool:
    return "loss" in name.lower()


def _is_accuracy(name: str) -> bool:
    return "acc" in name.lower()


def history_png(history: dict) -> str:
    """Loss and accuracy curves per epoch, as a PNG data URI."""
    from matplotlib.figure import Figure

    groups = [
        ("loss", [k for k in history["series"] if _is_loss(k)]),
        ("accuracy", [k for k in history["series"] if _is_accuracy(k)]),
    ]
    groups = [(t, keys) for t, keys in groups if keys]
    if not groups:  # neither loss nor accuracy by name: plot whatever is there
        groups = [("value", list(history["series"]))]
    fig = Figure(figsize=(5.2 * len(groups), 3.4), dpi=110, layout="constrained")
    for i, (title, keys) in enumerate(groups):
        ax = fig.add_subplot(1, len(groups), i + 1)
        for key in keys:
            vals = history["series"][key]
            x = history["epoch"][: len(vals)]
            style = "--" if any(s in key.lower() for s in ("val", "valid")) else "-"
            ax.plot(x, vals, style, marker="o" if len(vals) <= 30 else None, markersize=3, label=key)
        if history.get("best_epoch"):
            ax.axvline(
                history["best_epoch"], color="#9ca3af", linestyle=":", label=f"best epoch ({history['best_epoch']})"
            )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return png_data_uri(fig)


def _cv_results(head) -> dict | None:
    cv = getattr(head, "cv_results_", None)
    if not isinstance(cv, dict):
        return None
    cv = dict(cv)
    if getattr(head, "C_", None) is not None:
        cv.setdefault("chosen_C", float(head.C_))
    return cv


def cv_png(cv: dict) -> str | None:
    """Cross-validated accuracy against the regularisation grid, as a PNG data URI (None if not plottable)."""
    from matplotlib.figure import Figure

    C, acc = cv.get("C"), cv.get("mean_accuracy")
    if not C or not acc or len(C) != len(acc) or len(C) < 2:
        return None
    std = cv.get("std_accuracy") or [0.0] * len(C)
    fig = Figure(figsize=(5.2, 3.2), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.errorbar(C, acc, yerr=std, marker="o", markersize=4, capsize=3)
    chosen = cv.get("chosen_C")
    best = int(np.argmin(np.abs(np.log(np.asarray(C, float)) - np.log(chosen)))) if chosen else int(np.argmax(acc))
    ax.scatter([C[best]], [acc[best]], s=80, facecolors="none", edgecolors="#dc2626", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("C (inverse regularisation)")
    ax.set_ylabel(f"mean accuracy, {cv.get('folds', '?')}-fold CV")
    ax.grid(alpha=0.3)
    return png_data_uri(fig)


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


# -- confusion matrix ----------------------------------------------------------------------------
def confusion_table(cm, names: list[str]) -> str:
    """The confusion matrix as an HTML table heatmap.

    Colours are row-normalised (share of each true class), blue on the diagonal, red off it, so a
    class with few images is as readable as a big one; every non-empty cell has a title with the
    counts. Cells shrink with the number of classes (numbers are shown while they fit) and column
    labels are vertical, so 100+ classes stay legible in a scrollable box.
    """
    cm = np.asarray(cm, dtype=np.int64)
    n = len(names)
    cell = int(max(14, min(44, 1100 // max(n, 1))))
    show_numbers = cell >= 22
    row_sums = cm.sum(axis=1)
    col_sums = cm.sum(axis=0)
    esc = html.escape
    out = [
        f'<table class="cm" style="--cell:{cell}px" data-classes="{n}">',
        '<thead><tr><th class="corner">true ↓ · predicted →</th>',
    ]
    for j, name in enumerate(names):
        out.append(
            f'<th class="col" title="predicted: {esc(name)} ({col_sums[j]} '
            f'predictions)"><span>{esc(_short(name))}</span></th>'
        )
    out.append('<th class="col tot"><span>recall</span></th></tr></thead><tbody>')
    for i, name in enumerate(names):
        total = int(row_sums[i])
        recall = cm[i, i] / total if total else float("nan")
        out.append(f'<tr><th class="row" title="true: {esc(name)} ({total} images)">{esc(_short(name, 32))}</th>')
        for j in range(n):
            c = int(cm[i, j])
            if c == 0:
                out.append("<td></td>")
                continue
            frac = c / total if total else 0.0
            alpha = 0.12 + 0.88 * frac
            rgb = "37,99,235" if i == j else "220,38,38"
            fg = "#fff" if alpha > 0.55 else "#111"
            title = f"true: {name}\npredicted: {names[j]}\n{c} of {total} ({frac:.0%})"
            text = str(c) if show_numbers else ""
            out.append(
                f'<td class="{"d" if i == j else "o"}" style="background:rgba({rgb},{alpha:.2f});color:{fg}" '
                f'title="{esc(title)}" data-count="{c}">{text}</td>'
            )
        out.append(f'<td class="tot">{"" if math.isnan(recall) else f"{recall:.2f}"}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def top_confusions(cm, names: list[str], limit: int = TOP_CONFUSIONS) -> list[dict]:
    cm = np.asarray(cm, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:limit]
    out = []
    for k in flat:
        i, j = divmod(int(k), len(names))
        if off[i, j] == 0:
            break
        total = int(cm[i].sum())
        out.append(
            {
                "true": names[i],
                "predicted": names[j],
                "count": int(off[i, j]),
                "share": off[i, j] / total if total else 0.0,
            }
        )
    return out


def _short(name: str, limit: int = 24) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


# -- rendering -----------------------------------------------------------------------------------
def render_html(data: ReportData) -> str:
    """The self-contained HTML page for ``data``."""
    import jinja2

    from .. import __version__

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    m = data.metrics
    names = m["class_names"]
    cm = np.asarray(m["confusion_matrix"])
    per_class = []
    confusions = top_confusions(cm, names, limit=len(names) ** 2)
    worst_for = {}
    for c in confusions:
        worst_for.setdefault(c["true"], c)
    for i, name in enumerate(names):
        pc = m["per_class"][name]
        w = worst_for.get(name)
        per_class.append(
            {
                "name": name,
                "precision": pc["precision"],
                "recall": pc["recall"],
                "f1": pc["f1-score"],
                "support": pc["support"],
                "errors": int(cm[i].sum() - cm[i, i]),
                "confused": f"{w['predicted']} ({w['count']})" if w else "",
            }
        )
    scores = [("accuracy", m["accuracy"]), ("macro-F1", m["macro_f1"])]
    scores += [(f"top-{k} accuracy", m[f"top{k}_accuracy"]) for k in (3, 5) if f"top{k}_accuracy" in m]
    scores += [("weighted-F1", m["weighted_f1"])] if "weighted_f1" in m else []
    # Safe inside <script>: no "<", ">" or "&" survives as such (JSON \u escapes mean the same string).
    plain = {k: v for k, v in m.items() if k != "model"}
    metrics_json = (
        json.dumps(plain, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )
    return env.get_template("report.html.j2").render(
        d=data,
        m=m,
        scores=scores,
        n_errors=len(data.errors),
        n_classes=len(names),
        per_class=per_class,
        confusion=confusion_table(cm, names) if len(names) else "",
        confusions=confusions[:TOP_CONFUSIONS],
        history_img=history_png(data.history) if data.history else None,
        cv_img=cv_png(data.cv_results) if data.cv_results else None,
        reliability_img=_reliability_img(data, m),
        map_img=_map_img(data, names),
        cv_where=data.cv_where,
        metrics_json=metrics_json,
        metrics_text=json.dumps(plain, ensure_ascii=False, indent=1),
        version=__version__,
    )


def _reliability_img(data: ReportData, m: dict) -> str | None:
    from .calibration import ece_from_bins, reliability_png

    if not data.reliability:
        return None
    return reliability_png(data.reliability, m.get("ece", ece_from_bins(data.reliability)))


def _map_img(data: ReportData, names: list[str]) -> str | None:
    from .feature_map import feature_map_png

    fm = data.feature_map
    return feature_map_png(fm["coords"], fm["y"], fm["wrong"], names, fm["method"]) if fm else None
