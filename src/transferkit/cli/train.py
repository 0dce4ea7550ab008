"""`transferkit train`."""

from __future__ import annotations

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
    layer: Optional[List[str]] = typer.Option(None, "--layer", help="Layer of the feature file to train on; repeat to concatenate several (default: its first layer)."),
):
    """Fit logistic regression (C by cross-validated grid search) and report it on the test split."""
    from .. import api

    if class_weight not in (None, "balanced"):
        raise TransferkitError(f"--class-weight must be 'balanced' (got {class_weight!r})")
    with console.status("training logistic regression (cross-validating C)…"):
        r = api.train(features, output, cv=cv, Cs=C or None, class_weight=class_weight, seed=seed, layer=layer or None)
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
    _print_layers(features, r.model.backbone)
    console.print(f"\n[bold]test split ({r.metrics.get('n_test', 0)} images)[/]\n{r.report}", highlight=False)
    console.print(f"[green]saved[/] {r.path}")


def _print_layers(features: Path, spec: dict) -> None:
    """Say which layers were used when the file holds several."""
    from ..store import open_features

    with open_features(features) as ff:
        names = [info["name"] for info in ff.layers]
    if len(names) > 1:
        used = spec["layer"] if isinstance(spec["layer"], list) else [spec["layer"]]
        console.print(f"layers: trained on {' + '.join(used)} (the file holds {', '.join(names)}; choose with --layer)")
