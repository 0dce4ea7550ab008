"""Classification metrics as plain JSON-ready data, and the familiar text report."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, f1_score


def classification_metrics(y_true, proba: np.ndarray, class_names: list[str], top_k=(3, 5)) -> dict:
    y_true = np.asarray(y_true)
    labels = list(range(len(class_names)))
    y_pred = np.argmax(proba, axis=1)
    report = classification_report(y_true, y_pred, labels=labels, target_names=class_names, output_dict=True, zero_division=0)
    per_class = {
        name: {k: (int(v) if k == "support" else float(v)) for k, v in report[name].items()}
        for name in class_names
    }
    out = {
        "n_test": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": per_class,
        "class_names": list(class_names),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if len(y_true):  # expected calibration error of the top-1 confidences (see .calibration)
        from .calibration import N_BINS, expected_calibration_error

        out["ece"], out["ece_bins"] = expected_calibration_error(y_true, proba), N_BINS
    ranked = np.argsort(-proba, axis=1)
    for k in top_k:
        if k < len(class_names):
            out[f"top{k}_accuracy"] = float(np.mean(np.any(ranked[:, :k] == y_true[:, None], axis=1)))
    return out


def format_report(y_true, proba: np.ndarray, class_names: list[str]) -> str:
    """scikit-learn's per-class precision/recall/f1/support table, with accuracy and averages."""
    return classification_report(
        np.asarray(y_true), np.argmax(proba, axis=1), labels=list(range(len(class_names))),
        target_names=class_names, digits=4, zero_division=0,
    )


def per_class_table(metrics: dict) -> str:
    """Text table of precision/recall/f1/support from :func:`classification_metrics` output."""
    names = metrics["class_names"]
    width = max([len(n) for n in names] + [12])
    lines = [f"{'':>{width}}  precision    recall  f1-score   support", ""]
    for name in names:
        c = metrics["per_class"][name]
        lines.append(f"{name:>{width}}  {c['precision']:9.4f} {c['recall']:9.4f} {c['f1-score']:9.4f} {c['support']:9d}")
    lines += ["", f"{'accuracy':>{width}}  {'':9} {'':9} {metrics['accuracy']:9.4f} {metrics['n_test']:9d}",
              f"{'macro f1':>{width}}  {'':9} {'':9} {metrics['macro_f1']:9.4f} {metrics['n_test']:9d}",
              f"{'weighted f1':>{width}}  {'':9} {'':9} {metrics['weighted_f1']:9.4f} {metrics['n_test']:9d}"]
    return "\n".join(lines)
