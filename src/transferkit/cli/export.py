"""`transferkit export`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._app import app, console, esc, friendly


@app.command()
@friendly
def export(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file from `transferkit train`."),
    output: Path = typer.Option(
        ..., "-o", "--output", help="ONNX file to write; its JSON sidecar goes next to it (OUTPUT.json)."
    ),
    opset: int = typer.Option(17, "--opset", min=13, help="ONNX opset version."),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Compare ONNX Runtime with PyTorch on a probe batch (max abs diff ≤ 1e-4)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT and its sidecar if they exist."),
):
    """Export backbone + head as ONE ONNX graph: preprocessed images (N×3×H×W) -> class probabilities."""
    from ..export import export_onnx

    with console.status("exporting to ONNX…"):
        r = export_onnx(model, output, opset=opset, check=check, overwrite=overwrite)
    info = json.loads(r.sidecar.read_text(encoding="utf-8"))
    shape = "×".join(str(d) for d in info["input"]["shape"])
    console.print(
        f"[green]wrote[/] {esc(r.path)} ({r.size_bytes / 1e6:.1f} MB, {r.n_nodes} nodes, opset {opset})",
        highlight=False,
    )
    console.print(
        f"  input  {info['input']['name']}: float32 {shape} (NCHW, preprocessed; see the sidecar)", highlight=False
    )
    console.print(
        f"  output {info['output']['name']}: float32 batch×{len(info['class_names'])} class probabilities",
        highlight=False,
    )
    if r.max_abs_diff is not None:
        console.print(f"  checked with ONNX Runtime: max |Δ| vs PyTorch = {r.max_abs_diff:.1e}", highlight=False)
    console.print(f"[green]wrote[/] {esc(r.sidecar)} (preprocessing, class names)", highlight=False)
