"""Classification metrics as plain JSON-ready data, and the familiar text report."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true, proba: np.ndarray, class_names: list[str], top_k=(3, 5)) -> dict:
    y_true = np.asarray(y_true)
    labels = list(range(len(class_names)))
    y_pred = np.argmax(proba, axis=1)
    cm = confusion(y_true, y_pred, len(labels))
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    # scikit-learn's precision_recall_fscore_support with zero_division=0, in NumPy (importing scikit-learn
    # costs more than training the default head)
    precision, recall, f1 = _divide(tp, predicted), _divide(tp, support), _divide(2 * tp, support + predicted)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1-score": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(class_names)
    }
    out = {
        "n_test": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
        "macro_f1": float(np.mean(f1)) if len(f1) else 0.0,
        "weighted_f1": float(np.average(f1, weights=support)) if support.sum() else 0.0,
        "per_class": per_class,
        "class_names": list(class_names),
        "confusion_matrix": cm.tolist(),
    }
    if len(y_true):  # expected calibration error of the top-1 confidences (see .calibration)
        from .calibration import N_BINS, expected_calibration_error

        out["ece"], out["ece_bins"] = expected_calibration_error(y_true, proba), N_BINS
    ranked = np.argsort(-proba, axis=1)
    for k in top_k:
        if k < len(class_names):
            out[f"top{k}_accuracy"] = float(np.mean(np.any(ranked[:, :k] == y_true[:, None], axis=1)))
    return out


def confusion(y_true, y_pred, n_labels: int) -> np.ndarray:
    """Counts (true label, predicted label) for labels 0 .. n_labels - 1; other values are left out."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    keep = (y_true >= 0) & (y_true < n_labels) & (y_pred >= 0) & (y_pred < n_labels)
    flat = y_true[keep] * n_labels + y_pred[keep]
    return np.bincount(flat, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.where(den > 0, num / np.maximum(den, 1), 0.0)


def format_report(y_true, proba: np.ndarray, class_names: list[str]) -> str:
    """scikit-learn's per-class precision/recall/f1/support table, with accuracy and averages."""
    return per_class_table(classification_metrics(y_true, proba, class_names))


def per_class_table(metrics: dict) -> str:
    """Text table of precision/recall/f1/support from :func:`classification_metrics` output, laid out as
    scikit-learn's ``classification_report`` (the one format ``train`` and ``evaluate`` both print)."""
    names = metrics["class_names"]
    rows = [metrics["per_class"][name] for name in names]
    n = metrics["n_test"]
    width = max([len(n) for n in names] + [12])
    lines = [f"{'':>{width}}  precision    recall  f1-score   support", ""]
    for name, c in zip(names, rows):
        lines.append(
            f"{name:>{width}}  {c['precision']:9.4f} {c['recall']:9.4f} {c['f1-score']:9.4f} {c['support']:9d}"
        )
    lines += ["", f"{'accuracy':>{width}}  {'':9} {'':9} {metrics['accuracy']:9.4f} {n:9d}"]
    for label, weights in (("macro avg", [1.0] * len(rows)), ("weighted avg", [c["support"] for c in rows])):
        total = sum(weights) or 1.0
        avg = [sum(w * c[key] for w, c in zip(weights, rows)) / total for key in ("precision", "recall", "f1-score")]
        lines.append(f"{label:>{width}}  {avg[0]:9.4f} {avg[1]:9.4f} {avg[2]:9.4f} {n:9d}")
    return "\n".join(lines)
