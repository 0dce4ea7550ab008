"""`transferkit train` and `transferkit evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import TransferkitError

from ._app import app, console, friendly

@app.command()
@friendly
def train(
    features: Path = typer.Argument(..., help="Feature file (HDF5) from `transferkit extract`."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.safetensors)."),
    cv: int = typer.Option(3, "--cv", min=2, help="Cross-validation folds for choosing C."),
    C: Optional[List[float]] = typer.Option(None, "--C", help="C values to try (repeatable; default 1e-4 … 1e4, one per decade)."),
    class_weight: Optional[str] = typer.Option(None, "--class-weight", help="'balanced' to reweight rare classes."),
    seed: int = typer.Option(42, "--seed", help="Seed of the CV folds."),
):
    """Fit logistic regression (C by cross-validated grid search) and report it on the test split."""
    from .. import api

    if class_weight not in (None, "balanced"):
        raise TransferkitError(f"--class-weight must be 'balanced' (got {class_weight!r})")
    with console.status("training logistic regression (cross-validating C)…"):
        r = api.train(features, output, cv=cv, Cs=C or None, class_weight=class_weight, seed=seed)
    head = r.model.head
    grid = Table("C", "CV accuracy (mean ± std)", title=f"{cv}-fold CV on the train split ({r.model.training['n_train']} rows)")
    res = head.cv_results_
    for c, m, s in zip(res["C"], res["mean_accuracy"], res["std_accuracy"]):
        mark = " ◀ best" if c == head.C_ else ""
        grid.add_row(f"{c:g}", f"{m:.4f} ± {s:.4f}{mark}")
    console.print(grid)
    if head.n_not_converged_:
        console.print(f"[yellow]warning:[/] L-BFGS reached max_iter in {head.n_not_converged_} of {head.n_fits_} fits; "
                      "results at those C values may be slightly off")
    console.print(f"best C = {head.C_:g}; trained in {r.seconds:.1f} s")
    console.print(f"\n[bold]test split ({r.metrics.get('n_test', 0)} images)[/]\n{r.report}", highlight=False)
    console.print(f"[green]saved[/] {r.path}")


# ----------------------------------------------------------------------------------------------
@app.command()
@friendly
def evaluate(
    model: Path = typer.Argument(..., help="Model file from `transferkit train`."),
    features: Path = typer.Argument(..., help="Feature file made with the same backbone."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the metrics as JSON to this file."),
    split: str = typer.Option("test", "--split", help="'test' (default) or 'train'."),
):
    """Score a model on the test split: accuracy, macro-F1, per-class table, confusion matrix."""
    from .. import api
    from ..evaluate.metrics import per_class_table

    m = api.evaluate(model, features, split=split)
    console.print(f"[bold]{split} split[/]: {m['n_test']} images, accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}"
                  + "".join(f", top-{k} {m[f'top{k}_accuracy']:.4f}" for k in (3, 5) if f"top{k}_accuracy" in m))
    console.print(per_class_table(m), highlight=False)
    if json_out:
        json_out.write_text(json.dumps(m, indent=2, ensure_ascii=False))
        console.print(f"[green]wrote[/] {json_out}")


