"""`transferkit inspect`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ._app import app, console, friendly, print_skipped

@app.command()
@friendly
def inspect(
    features: Path = typer.Argument(..., help="Feature file (HDF5)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document instead of tables."),
):
    """Show provenance, rows per class and split, skipped files and completeness of a feature file."""
    from ..inspect import describe_features

    info = describe_features(features)
    if as_json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return
    status = "[green]complete[/]" if info["complete"] else "[bold red]INCOMPLETE[/] (resume with `transferkit extract ... --resume`)"
    console.print(f"[bold]{features}[/]: {info['n_rows']} rows x {info['feature_dim']} features, {status}")
    prov = Table(show_header=False, box=None)
    for key in ("model", "layer", "pool", "weights", "weights_sha256", "dataset_root", "test_size", "seed", "created", "engine"):
        if key in info["provenance"]:
            prov.add_row(key, str(info["provenance"][key]))
    prov.add_row("preprocess", json.dumps(info["provenance"].get("preprocess")))
    console.print(prov)
    table = Table("class", "train", "test", "total")
    for name, c in info["classes"].items():
        table.add_row(name, str(c["train"]), str(c["test"]), str(c["train"] + c["test"]))
    console.print(table)
    print_skipped([(s["path"], s["reason"]) for s in info["skipped"]])


