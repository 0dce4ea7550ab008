"""The comparison as a Rich table, a CSV (one row per candidate), a JSON (per-fold scores too) and a
bar chart (CV accuracy with its fold spread, next to LogME)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from .results import CandidateResult, CompareResult

CSV_COLUMNS = (
    "rank", "candidate", "model", "layer", "pool", "weights", "dims", "logme", "hscore",
    "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "delta_vs_best", "p_vs_best",
    "tied_with_best", "extract_seconds", "reused", "train_seconds", "score_seconds", "not_converged_folds",
    "feature_file", "error",
)


def _num(v, digits=4):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), digits)


def row_dict(rank: int | None, r: CandidateResult) -> dict:
    c = r.candidate
    return {
        "rank": rank if r.ok else "", "candidate": r.name, "model": c.model,
        "layer": "" if c.is_pixels else (c.layer or "default"), "pool": "" if c.is_pixels else c.pool,
        "weights": c.weights or "", "dims": r.dims or "", "logme": _num(r.logme), "hscore": _num(r.hscore),
        "accuracy_mean": _num(r.accuracy_mean), "accuracy_std": _num(r.accuracy_std),
        "macro_f1_mean": _num(r.macro_f1_mean), "macro_f1_std": _num(r.macro_f1_std),
        "delta_vs_best": _num(r.delta_vs_best), "p_vs_best": _num(r.p_vs_best),
        "tied_with_best": r.tied_with_best if r.ok else "", "extract_seconds": _num(r.extract_seconds, 2),
        "reused": r.reused, "train_seconds": _num(r.train_seconds, 2), "score_seconds": _num(r.score_seconds, 2),
        "not_converged_folds": r.not_converged, "feature_file": str(r.feature_file or ""), "error": r.error or "",
    }


def save(result: CompareResult, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    ranked = [(i + 1 if r.ok else None, r) for i, r in enumerate(result.rows)]
    result.csv_path = out_dir / "compare.csv"
    with open(result.csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for rank, r in ranked:
            w.writerow(row_dict(rank, r))
    result.json_path = out_dir / "compare.json"
    doc = {
        "n_images": result.n_images, "n_dataset": result.n_dataset, "sample": result.sample,
        "folds": result.folds, "seed": result.seed, "class_names": result.class_names,
        "dropped": [list(d) for d in result.dropped],
        "candidates": [
            {**row_dict(rank, r), "candidate_spec": r.candidate.to_dict(),
             "fold_accuracy": [] if r.accuracy is None else [round(float(a), 6) for a in r.accuracy],
             "fold_macro_f1": [] if r.macro_f1 is None else [round(float(a), 6) for a in r.macro_f1]}
            for rank, r in ranked
        ],
    }
    result.json_path.write_text(json.dumps(doc, indent=2))
    if any(r.ok for r in result.rows):
        result.png_path = out_dir / "compare.png"
        plot(result, result.png_path)


def plot(result: CompareResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = [r for r in result.rows if r.ok][::-1]  # best LogME at the top
    names = [r.name for r in rows]
    best = result.best
    colours = ["#2a9d8f" if r is best else ("#8ecae6" if r.tied_with_best else "#adb5bd") for r in rows]
    height = 1.2 + 0.45 * len(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, height), sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    y = range(len(rows))
    ax1.barh(y, [r.accuracy_mean for r in rows], xerr=[r.accuracy_std for r in rows], color=colours, capsize=3)
    for i, r in enumerate(rows):
        ax1.text(0.01, i, f"{r.accuracy_mean:.3f} ± {r.accuracy_std:.3f}", va="center", fontsize=8)
    ax1.set_yticks(list(y), names)
    ax1.set_xlim(0, 1.05)
    ax1.set_xlabel(f"{result.folds}-fold CV accuracy (mean ± std over folds)")
    ax2.barh(y, [r.logme for r in rows], color="#6c757d")
    ax2.set_xlabel("LogME (ranks candidates; not an accuracy)")
    ax2.axvline(0, color="black", linewidth=0.5)
    fig.suptitle(f"{result.n_images} images, {len(result.class_names)} classes "
                 "(green: best accuracy; blue: not significantly worse)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(result: CompareResult):
    """A Rich table of the result, ordered by LogME."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=f"{result.folds}-fold CV on {result.n_images} images, {len(result.class_names)} classes"
        + (f" (stratified sample of {result.n_dataset})" if result.n_images < result.n_dataset else ""),
        title_justify="left",
    )
    for col, just in (
        ("#", "right"),
        ("candidate", "left"),
        ("dims", "right"),
        ("LogME", "right"),
        ("H", "right"),
        ("accuracy", "right"),
        ("macro-F1", "right"),
        ("vs best", "right"),
        ("extract", "right"),
        ("fit", "right"),
    ):
        t.add_column(col, justify=just, no_wrap=col != "candidate", min_width=10 if col == "candidate" else None)
    best = result.best if any(r.ok for r in result.rows) else None
    for i, r in enumerate(result.rows):
        if not r.ok:
            t.add_row("", Text(r.name), "", "", "", "[red]failed[/]", "", "", "", "")
            continue
        if r is best:
            vs = "[bold green]best[/]"
        elif r.tied_with_best:
            vs = f"{r.delta_vs_best:+.3f} ≈ (p={r.p_vs_best:.3f})"
        else:
            vs = f"{r.delta_vs_best:+.3f} (p={r.p_vs_best:.3f})"
        acc = f"{r.accuracy_mean:.3f}±{r.accuracy_std:.3f}"
        t.add_row(
            str(i + 1),
            Text(r.name),
            str(r.dims),
            f"{r.logme:.3f}",
            f"{r.hscore:.2f}",
            f"[bold]{acc}[/]" if r is best else acc,
            f"{r.macro_f1_mean:.3f}±{r.macro_f1_std:.3f}",
            vs,
            "reused" if r.reused else f"{r.extract_seconds:.1f}s",
            f"{r.train_seconds:.1f}s",
        )
    return t
