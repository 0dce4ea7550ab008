"""`transferkit evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from ._app import app, console, esc, friendly
from ._output import messages_to_stderr, write_json


@app.command()
@friendly
def evaluate(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file from `transferkit train`."),
    features: Path = typer.Argument(
        ...,
        metavar="FEATURES|DATA",
        help=("Feature file made with the same backbone, or the image folder / CSV (scored through the model's own "
              "backbone; needed for fine-tuned models)."),
    ),
    json_out: Optional[Path] = typer.Option(
        None,
        "--json",
        help="Write the metrics as JSON to this file ('-': standard output; messages then go to standard error).",
    ),
    split: str = typer.Option(
        "test", "--split", help="'test', 'train', or 'val' (when the dataset came split three ways)."
    ),
    html: Optional[Path] = typer.Option(
        None, "--html", help="Also write a self-contained HTML report (misclassified images, confusion matrix, ...)."
    ),
    images_root: Optional[Path] = typer.Option(
        None,
        "--images-root",
        show_default="the recorded dataset root",
        help="Folder the images now live in, if they moved since extraction.",
    ),
):
    """Score a model on the test split: accuracy, macro-F1, per-class table, confusion matrix."""
    with messages_to_stderr(json_out):
        m = _evaluate_and_print(model, features, split, html, images_root)
    if json_out:
        write_json(json_out, m)
        if str(json_out) != "-":
            console.print(f"[green]wrote[/] {esc(json_out)}")


def _evaluate_and_print(model, features, split, html, images_root):
    from ..evaluate.metrics import per_class_table
    from ..training import evaluate as run_evaluate

    if html is None and images_root is not None:
        raise typer.BadParameter("--images-root only matters with --html", param_hint="--images-root")
    if html is not None:
        with console.status("writing the HTML report (thumbnails of the misclassified images)…"):
            m = run_evaluate(model, features, split=split, html=html, images_root=images_root)
    else:
        m = run_evaluate(model, features, split=split)
    console.print(
        f"[bold]{split} split[/]: {m['n_test']} images, accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}"
        + "".join(f", top-{k} {m[f'top{k}_accuracy']:.4f}" for k in (3, 5) if f"top{k}_accuracy" in m)
        + (f", ECE {m['ece']:.4f}" if "ece" in m else "")
    )
    if m.get("split_from"):  # feature files say where their split came from
        console.print(Text(f"split from {m['split_from']}"))
    chosen = m.get("model", {})
    if chosen.get("scaling"):
        console.print(Text(f"model: {chosen.get('head')} on {chosen['scaling']} features, C = {chosen.get('C'):g}"))
    console.print(Text(per_class_table(m)))
    if html is not None:
        n_errors = m["n_test"] - sum(row[i] for i, row in enumerate(m["confusion_matrix"]))
        console.print(f"[green]wrote[/] {esc(m['html'])} ({n_errors} misclassified images)")
    return m
