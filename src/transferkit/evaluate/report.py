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
:class:`ReportData` (:mod:`.report_data`, with the thumbnails from :mod:`.thumbnails`), and
:func:`render_html` turns that into HTML with the plots of :mod:`.report_plots` and the markup of
``templates/report.html.j2``, so the renderer can be exercised with synthetic data (e.g. 101 classes)
without extracting anything.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..atomicfile import atomic_write_text
from ..errors import TransferkitError
from .report_data import (  # noqa: F401  (the report's data, importable from here as before)
    Misclassified,
    ReportData,
    _cv_results,
    _hyperparameter_rows,
    collect,
    find_history,
    misclassified,
    normalise_history,
)
from .report_plots import _map_img, _reliability_img, cv_png, history_png
from .thumbnails import THUMBNAIL_SIZE, fill_thumbnails, placeholder, thumbnail  # noqa: F401  (as before)

TOP_CONFUSIONS = 15


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


# -- confusion matrix ----------------------------------------------------------------------------
def confusion_cells(cm, names: list[str]) -> dict:
    """The confusion matrix as the template's heatmap draws it (markup: ``templates/report.html.j2``).

    Colours are row-normalised (share of each true class), blue on the diagonal, red off it, so a
    class with few images is as readable as a big one; every non-empty cell has a title with the
    counts. Cells shrink with the number of classes (numbers are shown while they fit) and column
    labels are vertical, so 100+ classes stay legible in a scrollable box.
    """
    cm = np.asarray(cm, dtype=np.int64)
    n = len(names)
    cell = int(max(14, min(44, 1100 // max(n, 1))))
    show_numbers = cell >= 22
    row_sums, col_sums = cm.sum(axis=1), cm.sum(axis=0)
    cols = [{"name": name, "short": _short(name), "predictions": int(col_sums[j])} for j, name in enumerate(names)]
    rows = []
    for i, name in enumerate(names):
        total = int(row_sums[i])
        recall = cm[i, i] / total if total else float("nan")
        cells = []
        for j in range(n):
            c = int(cm[i, j])
            if c == 0:
                cells.append(None)
                continue
            frac = c / total if total else 0.0
            alpha = 0.12 + 0.88 * frac
            cells.append({
                "kind": "d" if i == j else "o",
                "style": f"background:rgba({'37,99,235' if i == j else '220,38,38'},{alpha:.2f});"
                         f"color:{'#fff' if alpha > 0.55 else '#111'}",
                "title": f"true: {name}\npredicted: {names[j]}\n{c} of {total} ({frac:.0%})",
                "count": c,
                "text": str(c) if show_numbers else "",
            })
        rows.append({"name": name, "short": _short(name, 32), "total": total, "cells": cells,
                     "recall": "" if math.isnan(recall) else f"{recall:.2f}"})
    return {"cell": cell, "n": n, "cols": cols, "rows": rows}


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
        confusion=confusion_cells(cm, names) if len(names) else None,
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
