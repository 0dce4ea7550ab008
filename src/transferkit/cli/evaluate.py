"""`transferkit evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ._app import app, console, friendly


@app.command()
@friendly
def evaluate(
    model: Path = typer.Argument(..., help="Model file from `transferkit train`."),
    features: Path = typer.Argument(..., help="Feature file made with the same backbone."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the metrics as JSON to this file."),
    split: str = typer.Option("test", "--split", help="'test' (default) or 'train'."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a self-contained HTML report (misclassified images, confusion matrix, ...)."),
    images_root: Optional[Path] = typer.Option(None, "--images-root", help="Folder the images now live in, if they moved since extraction (default: the recorded dataset root)."),
):
    """Score a model on the test split: accuracy, macro-F1, per-class table, confusion matrix."""
    from .. import api
    from ..evaluate.metrics import per_class_table

    if html is None and images_root is not None:
        raise typer.BadParameter("--images-root only matters with --html", param_hint="--images-root")
    if html is not None:
        with console.status("writing the HTML report (thumbnails of the misclassified images)…"):
            m = api.evaluate(model, features, split=split, html=html, images_root=images_root)
    else:
        m = api.evaluate(model, features, split=split)
    console.print(f"[bold]{split} split[/]: {m['n_test']} images, accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}"
                  + "".join(f", top-{k} {m[f'top{k}_accuracy']:.4f}" for k in (3, 5) if f"top{k}_accuracy" in m)
                  + (f", ECE {m['ece']:.4f}" if "ece" in m else ""))
    console.print(per_class_table(m), highlight=False)
    if json_out:
        json_out.write_text(json.dumps(m, indent=2, ensure_ascii=False))
        console.print(f"[green]wrote[/] {json_out}")
    if html is not None:
        n_errors = m["n_test"] - sum(row[i] for i, row in enumerate(m["confusion_matrix"]))
        console.print(f"[green]wrote[/] {m['html']} ({n_errors} misclassified images)")


