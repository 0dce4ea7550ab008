"""The report's plots, each a PNG data URI: training curves, the hyper-parameter search, the
reliability diagram and the map of the features."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .png import png_data_uri

if TYPE_CHECKING:
    from .report_data import ReportData


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


def _reliability_img(data: ReportData, m: dict) -> str | None:
    from .calibration import ece_from_bins, reliability_png

    if not data.reliability:
        return None
    return reliability_png(data.reliability, m.get("ece", ece_from_bins(data.reliability)))


def _map_img(data: ReportData, names: list[str]) -> str | None:
    from .feature_map import feature_map_png

    fm = data.feature_map
    return feature_map_png(fm["coords"], fm["y"], fm["wrong"], names, fm["method"]) if fm else None
