"""`transferkit audit`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from ..errors import TransferkitError
from ._app import app, console, esc, friendly
from ._output import print_table


@app.command()
@friendly
def audit(
    features: Path = typer.Argument(..., help="Feature file (HDF5) from `transferkit extract`."),
    model: Optional[Path] = typer.Option(
        None,
        "--model",
        help=("Use this trained model's head and settings for the out-of-fold probabilities (default: logistic "
              "regression, C by CV)."),
    ),
    csv_out: Optional[Path] = typer.Option(
        None, "--csv", help="Write every finding to this CSV (kind,path,score,label,suggested_label,other_path)."
    ),
    html: Optional[Path] = typer.Option(
        None, "--html", help="Write a self-contained HTML page with the images side by side."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary and every finding as JSON instead of tables."
    ),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds of the out-of-fold probabilities."),
    score: str = typer.Option(
        "self-confidence",
        "--score",
        help="Label-issue ranking: self-confidence (1 - p[given]) or margin (normalised margin).",
    ),
    near: float = typer.Option(
        0.98, "--near", min=0.0, max=1.0, help="Cosine similarity from which two images are duplicates."
    ),
    k: int = typer.Option(5, "--k", min=1, help="Neighbours of the outlier score."),
    outlier_z: float = typer.Option(
        3.0, "--outlier-z", min=0.0, help="Outlier bar: robust standard deviations above the median neighbour distance."
    ),
    memory: str = typer.Option(
        "256MB", "--block-memory", help="Work space of the nearest-neighbour blocks (time does not depend on it much)."
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the folds."),
    images_root: Optional[Path] = typer.Option(
        None, "--images-root", help="Folder the images now live in, if they moved since extraction (for --html)."
    ),
):
    """Find label issues, duplicates (and train/test leakage) and outliers in a feature file."""
    from ..audit.label_issues import SCORES
    from ..audit.outputs import as_json as to_json
    from ..audit.outputs import csv_text, render_html, write_text
    from ..audit.run import audit as run_audit
    from ..store.budget import parse_size

    if score not in SCORES:
        raise TransferkitError(f"--score must be one of {', '.join(SCORES)} (got {score!r})")
    for path in (csv_out, html):  # fail before the work, not after it
        if path is not None and path.parent and not path.parent.exists():
            raise TransferkitError(f"{path.parent}: output folder does not exist")
    out = console if not as_json else None
    status = console.status("auditing…") if out else None
    if status:
        status.start()
    try:
        result = run_audit(
            features,
            model,
            folds=folds,
            seed=seed,
            score=score,
            near=near,
            k=k,
            outlier_z=outlier_z,
            budget=parse_size(memory),
            progress=(lambda stage, d, n: status.update(f"{stage} ({d}/{n})…")) if status else None,
        )
        if csv_out:
            write_text(csv_out, csv_text(result))
        if html:
            if status:
                status.update("writing the HTML page (thumbnails)…")
            write_text(html, render_html(result, images_root=images_root))
    finally:
        if status:
            status.stop()
    if as_json:
        print(json.dumps(to_json(result), indent=1, ensure_ascii=False))
        return
    _print(result)
    for path, what in ((csv_out, "findings"), (html, "HTML page")):
        if path:
            console.print(f"[green]wrote[/] {esc(path)} ({what})", highlight=False)


def _print(result) -> None:
    s = result.summary
    d = s["duplicates"]
    console.print(
        f"[bold]{esc(result.features)}[/]: {s['rows']} images ({s['train']} train, {s['test']} test), "
        f"{s['classes']} classes; largest/smallest class {s['imbalance']['ratio']:.2f}×",
        highlight=False,
    )
    console.print(
        f"label issues: {s['counts']['label_issue']} ({100 * s['label_issues']['share']:.1f} % of the images; "
        f"{s['settings']['folds']}-fold out-of-fold probabilities of {esc(s['settings']['head'])})",
        highlight=False,
    )
    console.print(
        f"duplicates: {d['pairs']} pairs ({d['exact']} exact, {d['near']} near; {d['within_train']} within train, "
        f"{d['within_test']} within test)",
        highlight=False,
    )
    style = "bold red" if d["leakage"] else "green"
    console.print(
        f"[{style}]train/test leakage: {d['leakage']} pairs[/] ({d['test_rows_leaked']} test images have a "
        f"duplicate in the train split)",
        highlight=False,
    )
    console.print(f"outliers: {s['counts']['outlier']}", highlight=False)
    for kind, title in (
        ("label_issue", "most suspicious labels"),
        ("duplicate", "closest pairs"),
        ("outlier", "farthest images"),
    ):
        rows = result.of_kind(kind)[:10]
        if not rows:
            continue
        table = Table("score", "path", "label", "suggested" if kind == "label_issue" else "other", title=title)
        for f in rows:
            other = (
                f.suggested_label
                if kind == "label_issue"
                else (f.other_path + (" (train/test)" if f.detail.get("leakage") else ""))
            )
            table.add_row(f"{f.score:.4f}", Text(f.path), Text(f.label), Text(other))
        print_table(console, table)
    console.print(f"audited in {result.seconds['total']:.1f} s", highlight=False)
