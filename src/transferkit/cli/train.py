"""`transferkit train`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from ..errors import TransferkitError
from ._app import app, console, esc, friendly
from ._output import messages_to_stderr, print_table, write_json


@app.command()
@friendly
def train(
    features: Path = typer.Argument(..., metavar="FEATURES", help="Feature file (HDF5) from `transferkit extract`."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.safetensors)."),
    head: str = typer.Option(
        "logreg", "--head", help="logreg, linear-svm, mlp, knn, or auto (try them all on the CV folds, keep the best)."
    ),
    cv: int = typer.Option(
        3,
        "--cv",
        min=2,
        help=("Cross-validation folds for choosing C / k (and for --head auto); a file with a val split uses it "
              "instead."),
    ),
    C: Optional[List[float]] = typer.Option(
        None,
        "--C",
        show_default="1e-4 … 1e4, one per decade, extended past an edge where the best sits",
        help="C values to try for logreg/linear-svm (repeatable).",
    ),
    scaling: Optional[str] = typer.Option(
        None,
        "--scaling",
        show_default="auto for logreg",
        help=("Feature scaling for logreg/linear-svm: none, standardise, l2, sqrt-l2, or auto (chosen with C by "
              "cross-validation)."),
    ),
    k: Optional[List[int]] = typer.Option(
        None, "--k", show_default="1 3 5 7 11 15 21", help="Neighbour counts to try for knn (repeatable)."
    ),
    hidden: Optional[str] = typer.Option(
        None, "--hidden", show_default="256", help="mlp hidden layer sizes, e.g. 256 or 512,128."
    ),
    dropout: Optional[float] = typer.Option(
        None, "--dropout", min=0.0, max=0.95, show_default="0.5", help="mlp dropout."
    ),
    epochs: Optional[int] = typer.Option(
        None,
        "--epochs",
        min=1,
        show_default="100 for mlp, 20 for streamed logreg/svm",
        help="mlp: most epochs (early stopping); streamed logreg/svm: epochs of Adam.",
    ),
    class_weight: Optional[str] = typer.Option(None, "--class-weight", help="'balanced' to reweight rare classes."),
    max_memory: Optional[str] = typer.Option(
        None,
        "--max-memory",
        help="Memory budget for the features, e.g. 2GB; a train split that does not fit is streamed from the file.",
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the CV folds, initialisation and minibatch order."),
    layer: Optional[List[str]] = typer.Option(
        None,
        "--layer",
        show_default="the file's first layer",
        help="Layer of the feature file to train on; repeat to concatenate several.",
    ),
    json_out: Optional[Path] = typer.Option(
        None,
        "--json",
        help=("Also write the head, its cross-validation results and the test metrics as JSON to this file ('-': "
              "standard output; messages then go to standard error)."),
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    calibrate: Optional[str] = typer.Option(
        None,
        "--calibrate",
        help=("'temperature': fit one temperature on out-of-fold logits so that confidences match accuracy (stored in "
              "the model; predict and export use it)."),
    ),
):
    """Fit a classifier head (hyper-parameters by cross-validation) and report it on the test split."""
    from ..heads import HEADS

    if calibrate not in (None, "temperature"):
        raise TransferkitError(f"--calibrate must be 'temperature' (got {calibrate!r})")
    if class_weight not in (None, "balanced"):
        raise TransferkitError(f"--class-weight must be 'balanced' (got {class_weight!r})")
    if head not in (*HEADS, "auto"):
        raise TransferkitError(f"--head must be one of {', '.join([*HEADS, 'auto'])} (got {head!r})")
    params: dict = {}
    per_head = {
        "knn": {"ks": tuple(k)} if k else {},
        "mlp": {
            **({"hidden": hidden} if hidden else {}),
            **({"dropout": dropout} if dropout is not None else {}),
            **({"max_epochs": epochs} if epochs else {}),
        },
        "logreg": {**({"max_epochs": epochs} if epochs else {}), **({"scaling": scaling} if scaling else {})},
        "linear-svm": {**({"max_epochs": epochs} if epochs else {}), **({"scaling": scaling} if scaling else {})},
    }
    if scaling is not None and scaling not in ("auto", "none", "standardise", "l2", "sqrt-l2"):
        raise TransferkitError(f"--scaling must be one of auto, none, standardise, l2, sqrt-l2 (got {scaling!r})")
    if head == "auto":
        if C:
            for name in ("logreg", "linear-svm"):
                per_head[name]["Cs"] = tuple(C)
        params = {name: p for name, p in per_head.items() if p}
    else:
        params = per_head.get(head, {})
        for flag, value, heads in (
            ("--k", k, ("knn",)),
            ("--hidden", hidden, ("mlp",)),
            ("--dropout", dropout, ("mlp",)),
            ("--C", C, ("logreg", "linear-svm")),
            ("--scaling", scaling, ("logreg", "linear-svm")),
        ):
            if value and head not in heads:
                raise TransferkitError(f"{flag} applies to --head {' / '.join(heads)}, not {head}")
    with messages_to_stderr(json_out):
        r = _train_and_print(
            features, output, head, cv, C, class_weight, seed, params, max_memory, layer, overwrite, calibrate
        )
    if json_out is not None:
        write_json(
            json_out,
            {
                "model": str(r.path),
                **r.model.describe(),
                "training": r.model.training,
                "seconds": r.seconds,
                "test": r.metrics,
            },
        )
        if str(json_out) != "-":
            console.print(Text(f"wrote {json_out}"))


def _train_and_print(
    features, output, head, cv, C, class_weight, seed, params, max_memory, layer, overwrite=False, calibrate=None
):
    from ..training import train as run_train

    label = {"auto": "trying every head"}.get(head, f"training {head}")
    with console.status(f"{label} ({cv}-fold cross-validation)…"):
        r = run_train(
            features,
            output,
            cv=cv,
            Cs=C or None,
            class_weight=class_weight,
            seed=seed,
            head=head,
            head_params=params,
            max_memory=max_memory,
            layer=layer or None,
            overwrite=overwrite,
            calibrate=calibrate,
        )
    rec = r.model.training
    if rec.get("auto"):
        _print_auto(rec["auto"], cv)
    fitted = r.model.head
    if rec.get("out_of_core"):
        console.print(
            f"[yellow]out of core:[/] the train split did not fit --max-memory {max_memory}; "
            f"streamed from the file ({getattr(fitted, 'sgd_', {}).get('chunk_rows', '?')} rows per chunk)"
        )
    _print_head(fitted, cv, rec["n_train"], rec.get("n_val", 0) if rec.get("chosen_on_val") else 0)
    console.print(f"trained in {r.seconds:.1f} s")
    if r.model.calibration:
        cal = r.model.calibration
        console.print(
            f"temperature T = {cal['temperature']:.3f} (fitted on {cal['folds']}-fold out-of-fold logits; "
            f"out-of-fold ECE {cal['oof_ece'][0]:.4f} -> {cal['oof_ece'][1]:.4f}, "
            f"log-loss {cal['oof_log_loss'][0]:.4f} -> {cal['oof_log_loss'][1]:.4f})"
        )
    _print_layers(features, r.model.backbone)
    console.print(f"\n[bold]test split ({r.metrics.get('n_test', 0)} images)[/]")
    console.print(Text(r.report))
    console.print(f"[green]saved[/] {esc(r.path)}")
    return r


def _print_layers(features: Path, spec: dict) -> None:
    """Say which layers were used when the file holds several."""
    from ..store import open_features

    with open_features(features) as ff:
        names = [info["name"] for info in ff.layers]
    if len(names) > 1:
        used = spec["layer"] if isinstance(spec["layer"], list) else [spec["layer"]]
        console.print(
            esc(f"layers: trained on {' + '.join(used)} (the file holds {', '.join(names)}; choose with --layer)")
        )


def _print_auto(rows, cv):
    table = Table(
        "head", "chosen", f"{cv}-fold CV accuracy", "fit time", title="--head auto: every head on the same folds"
    )
    for row in rows:
        acc = "—" if row["cv_accuracy"] is None else f"{row['cv_accuracy']:.4f} ± {row['cv_std']:.4f}"
        table.add_row(
            row["head"] + (" ◀ best" if row["best"] else ""), Text(str(row["chosen"])), acc, f"{row['seconds']:.1f} s"
        )
    print_table(console, table)


def _print_head(head, cv, n_train, n_val=0):
    res = getattr(head, "cv_results_", {}) or {}
    param = res.get("param")
    _print_scalings(head, res, n_train)
    if param and res.get("folds"):
        chosen = {"C": getattr(head, "C_", None), "k": getattr(head, "k_", None)}[param]
        what = (
            f"{res['folds']}-fold CV"
            if res.get("holdout_rows") is None
            else f"held-out fold ({res['holdout_rows']} rows)"
        )
        on = f", {head.scaling_} features" if getattr(head, "scaling_", None) else ""
        where = f"on the train split ({n_train} rows{on})"
        if n_val:  # the file has a val split: it chose the value; the final head is fitted on train + val
            what, where = "accuracy", f"on the val split{on}"
        grid = Table(param, "accuracy (mean ± std)", title=f"{head.kind}: {what} {where}")
        for v, m, sd in zip(res[param], res["mean_accuracy"], res["std_accuracy"]):
            grid.add_row(f"{v:g}", f"{m:.4f} ± {sd:.4f}" + (" ◀ best" if v == chosen else ""))
        print_table(console, grid)
        scaled = f" on {head.scaling_} features" if getattr(head, "scaling_", None) else ""
        console.print(
            f"best {param} = {chosen:g}{scaled}"
            + (
                f", chosen on the val split ({n_val} rows); the final head is fitted on train + val ({n_train} rows)"
                if n_val
                else ""
            )
        )
    elif param:
        scaled = f" on {head.scaling_} features" if getattr(head, "scaling_", None) else ""
        console.print(f"{param} = {getattr(head, param + '_'):g}{scaled} (given, no cross-validation)")
    if getattr(head, "n_not_converged_", 0):
        console.print(
            f"[yellow]warning:[/] L-BFGS reached max_iter in {head.n_not_converged_} of {head.n_fits_} fits; "
            "results at those C values may be slightly off (raise max_iter)"
        )
    sgd = getattr(head, "sgd_", None)
    if sgd and sgd.get("last_change") is not None and sgd["last_change"] > 1e-3 and not sgd.get("polish"):
        console.print(
            f"[yellow]warning:[/] the streamed objective still changed by {sgd['last_change']:.1%} in the last epoch; "
            "try more --epochs"
        )
    if getattr(head, "history_", None):
        h = head.history_
        table = Table(
            "epoch",
            "train loss",
            "train acc",
            "val loss",
            "val acc",
            title="mlp training curves (every epoch is in the model file)",
        )
        n = len(h["train_loss"])
        shown = sorted(set(list(range(0, n, max(1, n // 10))) + [n - 1, head.best_epoch_ - 1]))
        for e in shown:
            val = (f"{h['val_loss'][e]:.4f}", f"{h['val_accuracy'][e]:.4f}") if h["val_loss"] else ("—", "—")
            table.add_row(
                str(e + 1) + (" ◀ kept" if e == head.best_epoch_ - 1 else ""),
                f"{h['train_loss'][e]:.4f}",
                f"{h['train_accuracy'][e]:.4f}",
                *val,
            )
        print_table(console, table)
        stop = "early stopping" if head.stopped_early_ else "the epoch limit"
        console.print(
            f"{head.n_epochs_} epochs (stopped by {stop}); weights of epoch {head.best_epoch_} kept; "
            f"curves are stored in the model file (training.history)"
        )


def _print_scalings(head, res, n_train):
    """The feature scalings tried (each at its best C), when the head chose one by cross-validation."""
    rows = res.get("scalings")
    if not rows:
        return
    tie = next((k for k in rows[0] if k.startswith("mean_") and k != "mean_accuracy"), None)
    table = Table(
        "scaling",
        "best C",
        "accuracy (mean ± std)",
        (tie or "").removeprefix("mean_").replace("_", " "),
        title=f"{head.kind}: feature scalings, " + _scaling_folds(res) + f" on the train split ({n_train} rows)",
    )
    for row in rows:
        table.add_row(
            row["scaling"] + (" ◀ chosen" if row["scaling"] == head.scaling_ else ""),
            f"{row['C']:g}",
            f"{row['mean_accuracy']:.4f} ± {row['std_accuracy']:.4f}",
            f"{row[tie]:.4f}" if tie else "",
        )
    print_table(console, table)


def _scaling_folds(res) -> str:
    used, total = res.get("scaling_folds", res["folds"]), res["folds"]
    return (
        f"{total}-fold CV"
        if used == total
        else (f"{res['scaling_train_rows']} training rows of " if "scaling_train_rows" in res else "")
        + f"fold 1 of {total} (a large problem; the chosen scaling then ran on all folds)"
    )
