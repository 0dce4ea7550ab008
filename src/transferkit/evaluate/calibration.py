"""How far confidences are from accuracies: expected calibration error and the reliability diagram.

ECE (Naeini et al. 2015; Guo et al. 2017): predictions are grouped by their top-1 confidence into
``n_bins`` equal-width bins; ECE is the average of ``|accuracy - mean confidence|`` over the bins,
weighted by how many predictions each holds. 0 is perfect; an over-confident head (95 % sure, right
80 % of the time) scores high.
"""

from __future__ import annotations

import numpy as np

N_BINS = 15


def reliability_bins(y_true, proba: np.ndarray, n_bins: int = N_BINS) -> list[dict]:
    """Per confidence bin: its range, how many predictions fall in it, their accuracy and mean confidence."""
    proba = np.asarray(proba, np.float64)
    y_true = np.asarray(y_true)
    conf = proba.max(axis=1) if len(proba) else np.zeros(0)
    correct = (proba.argmax(axis=1) == y_true) if len(proba) else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)  # (lo, hi] bins, 0 in the first
    out = []
    for b in range(n_bins):
        rows = which == b
        n = int(rows.sum())
        out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n,
                    "accuracy": float(correct[rows].mean()) if n else None,
                    "confidence": float(conf[rows].mean()) if n else None})
    return out


def expected_calibration_error(y_true, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    return ece_from_bins(reliability_bins(y_true, proba, n_bins))


def ece_from_bins(bins: list[dict]) -> float:
    total = sum(b["count"] for b in bins)
    if not total:
        return float("nan")
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / total)


def reliability_png(bins: list[dict], ece: float) -> str:
    """The reliability diagram (accuracy per confidence bin against the diagonal, the bin's mean
    confidence in red, and the share of predictions per bin below), as a PNG data URI."""
    from matplotlib.figure import Figure

    from .png import png_data_uri

    lo = np.array([b["lo"] for b in bins])
    width = np.array([b["hi"] - b["lo"] for b in bins])
    counts = np.array([b["count"] for b in bins], float)
    acc = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
    conf = np.array([b["confidence"] if b["count"] else 0.0 for b in bins])
    fig = Figure(figsize=(5.2, 4.6), dpi=110, layout="constrained")
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = counts > 0
    ax.bar(lo[filled], acc[filled], width=width[filled], align="edge", color="#2563eb", alpha=0.8,
           edgecolor="#1e3a8a", label="accuracy")
    centre = lo[filled] + width[filled] / 2
    ax.vlines(centre, np.minimum(acc[filled], conf[filled]), np.maximum(acc[filled], conf[filled]), color="#dc2626",
              linewidth=2, label="gap")
    ax.scatter(
        centre, conf[filled], marker="_", s=160, color="#dc2626", linewidths=2, zorder=3, label="mean confidence"
    )
    ax.plot([0, 1], [0, 1], "--", color="#6b7280", label="perfect calibration")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.4f}, {len(bins)} bins)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    hist.bar(lo, counts / max(counts.sum(), 1), width=width, align="edge", color="#9ca3af")
    hist.set_xlabel("confidence (top-1 probability)")
    hist.set_ylabel("share")
    return png_data_uri(fig)
