"""`transferkit export-features`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.text import Text

from ._app import app, console, esc, friendly


@app.command("export-features")
@friendly
def export_features(
    features: Path = typer.Argument(..., help="Feature file (HDF5) from `transferkit extract`."),
    output: Path = typer.Option(
        ...,
        "-o",
        "--output",
        help=("File to write; its extension picks the format: .npy (with .labels.npy, .split.npy and .json beside it), "
              ".npz, .parquet or .csv."),
    ),
    layer: Optional[List[str]] = typer.Option(
        None, "--layer", help="Layer to export; repeat to concatenate several (default: the file's first layer)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT (and its sidecars) if they exist."),
    max_memory: str = typer.Option(
        "256MB", "--max-memory", help="Memory for the rows in flight; the file is exported in chunks that fit."
    ),
):
    """Export features, labels, split and paths to NumPy, Parquet or CSV, with provenance (see docs/feature-store.md)."""  # noqa: E501 (Typer help text: the first line is the command's summary)
    from ..store.export_features import export_features as run_export
    from ..store.fsio import human_bytes

    with console.status(f"exporting {esc(features)} to {esc(output.suffix or output)}…"):
        r = run_export(features, output, layer=layer or None, overwrite=overwrite, max_memory=max_memory)
    size = human_bytes(r.n_bytes)
    console.print(
        f"[green]wrote[/] {esc(r.path)}: {r.n_rows} rows x {r.n_features} features ({r.dtype}, {r.format}), "
        f"{size} in {r.seconds:.1f} s",
        highlight=False,
    )
    for extra in r.files[1:]:
        console.print(Text(f"  beside it: {extra}"))
