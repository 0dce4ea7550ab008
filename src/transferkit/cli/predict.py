"""`transferkit predict`."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ._app import app, console, err, friendly, print_skipped

STDOUT = Path("-")


@app.command()
@friendly
def predict(
    model: Path = typer.Argument(..., help="Model file from `transferkit train`."),
    inputs: List[Path] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="Labels to show per image (with their probabilities)."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write predictions to this CSV file ('-': standard output)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write predictions to this JSON file ('-': standard output)."),
    batch_size: str = typer.Option("32", "--batch-size", "-b", help="Images per forward pass, or auto."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="The backbone's weights file, if it moved since extraction (its hash must match)."),
    engine: str = typer.Option("auto", "--engine", help="auto | onnxruntime | torch (see docs/engines.md)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16 | int8 (int8: ONNX Runtime on the CPU, calibrated on these images)."),
):
    """Label new images with a trained model (unreadable files are reported, not fatal).

    Files come out in input order (a folder's images sorted by path), with paths as given. Exit
    status 0 when at least one image was predicted.
    """
    from .. import api

    if csv_out == STDOUT and json_out == STDOUT:
        raise typer.BadParameter("only one of --csv and --json can write to standard output")
    to_stdout = STDOUT in (csv_out, json_out)
    out = err if to_stdout else console  # messages must not mix with data on standard output
    from ..progress import progress_bar

    with progress_bar("predict", err) as update:
        r = api.predict(model, inputs, top_k=top_k, batch_size=batch_size, progress=update, weights=weights,
                        engine=engine, device=device, precision=precision)
    k = max((len(p.labels) for p in r.predictions), default=0)  # top_k, at most the number of classes
    if r.predictions and not to_stdout and (not (csv_out or json_out) or len(r.predictions) <= 50):
        console.print(prediction_table(r.predictions, k))
    if csv_out:
        write_csv(csv_out, r, k)
    if json_out:
        write_json(json_out, r, model, k)
    for path in (csv_out, json_out):
        if path and path != STDOUT:
            out.print(f"[green]wrote[/] {path}", highlight=False)
    if r.skipped:
        if to_stdout:
            err.print(f"[yellow]skipped {len(r.skipped)} unreadable file(s)[/]")
            for path, reason in r.skipped[:20]:
                err.print(f"  {path}: {reason}", highlight=False)
        else:
            print_skipped(r.skipped)
    out.print(f"{len(r.predictions)} predicted, {len(r.skipped)} skipped")
    if not r.predictions:
        what = "no image could be read" if r.skipped else "no image files found in the inputs"
        err.print(f"[bold red]error:[/] {what}", highlight=False)
        raise typer.Exit(1)


def prediction_table(predictions, k: int) -> Table:
    table = Table("file", "label", "probability", *(["next labels"] if k > 1 else []))
    table.columns[0].overflow = "fold"
    table.columns[2].justify = "right"
    for p in predictions:
        rest = [", ".join(f"{lab} {prob:.3f}" for lab, prob in zip(p.labels[1:], p.probabilities[1:]))] if k > 1 else []
        table.add_row(p.path, p.label, f"{p.confidence:.3f}", *rest)
    return table


def write_csv(path: Path, r, k: int) -> None:
    """One row per input file: predictions in input order, then the skipped files with their reason."""
    fh = sys.stdout if path == STDOUT else open(path, "w", newline="", encoding="utf-8")
    try:
        w = csv.writer(fh)
        w.writerow(["path"] + [c for i in range(k) for c in (f"label_{i + 1}", f"probability_{i + 1}")] + ["error"])
        for p in r.predictions:
            w.writerow([p.path] + [v for lab, prob in zip(p.labels, p.probabilities) for v in (lab, f"{prob:.6f}")] + [""])
        for s, why in r.skipped:
            w.writerow([s] + [""] * (2 * k) + [why])
    finally:
        if fh is not sys.stdout:
            fh.close()


def write_json(path: Path, r, model: Path, k: int) -> None:
    text = json.dumps({
        "model": str(model),
        "top_k": k,
        "predictions": [{"path": p.path, "labels": p.labels, "probabilities": p.probabilities} for p in r.predictions],
        "skipped": [{"path": s, "reason": why} for s, why in r.skipped],
    }, indent=2, ensure_ascii=False)
    if path == STDOUT:
        sys.stdout.write(text + "\n")
    else:
        path.write_text(text + "\n", encoding="utf-8")
