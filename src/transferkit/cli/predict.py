"""`transferkit predict`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ._app import app, console, err, friendly, print_skipped

@app.command()
@friendly
def predict(
    model: Path = typer.Argument(..., help="Model file from `transferkit train`."),
    inputs: List[Path] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="Labels to show per image."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write predictions to this CSV file."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write predictions to this JSON file."),
    batch_size: str = typer.Option("32", "--batch-size", "-b", help="Images per forward pass, or auto."),
    engine: str = typer.Option("auto", "--engine", help="auto | onnxruntime | torch (see docs/engines.md)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16."),
):
    """Label new images with a trained model (unreadable files are reported, not fatal)."""
    from .. import api
    from ..progress import progress_bar

    with progress_bar("predict", err) as update:
        r = api.predict(model, inputs, top_k=top_k, batch_size=batch_size, progress=update,
                        engine=engine, device=device, precision=precision)
    table = Table("path", *[f"label {i + 1}" if top_k > 1 else "label" for i in range(top_k)])
    for p in r.predictions:
        table.add_row(p.path, *[f"{lab} ({prob:.3f})" for lab, prob in zip(p.labels, p.probabilities)])
    if not (csv_out or json_out) or len(r.predictions) <= 50:
        console.print(table)
    if csv_out:
        with open(csv_out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["path"] + [c for i in range(top_k) for c in (f"label_{i + 1}", f"probability_{i + 1}")])
            for p in r.predictions:
                w.writerow([p.path] + [v for lab, prob in zip(p.labels, p.probabilities) for v in (lab, f"{prob:.6f}")])
        console.print(f"[green]wrote[/] {csv_out}")
    if json_out:
        json_out.write_text(json.dumps({
            "predictions": [{"path": p.path, "labels": p.labels, "probabilities": p.probabilities} for p in r.predictions],
            "skipped": [{"path": s, "reason": why} for s, why in r.skipped],
        }, indent=2, ensure_ascii=False))
        console.print(f"[green]wrote[/] {json_out}")
    print_skipped(r.skipped)
    console.print(f"{len(r.predictions)} predicted, {len(r.skipped)} skipped")
    if not r.predictions:
        raise typer.Exit(1)


