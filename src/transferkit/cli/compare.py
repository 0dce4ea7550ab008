"""`transferkit compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import app, console, esc, friendly


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@app.command()
@friendly
def compare(
    data: Path = typer.Argument(
        ..., metavar="DATA", help="Folder with one sub-folder per class, or a CSV manifest (path,label)."
    ),
    models: str = typer.Option(
        "efficientnet_lite0", "--models", "-m", help="Comma-separated backbones (see `transferkit models`)."
    ),
    layers: Optional[str] = typer.Option(
        None,
        "--layers",
        show_default="default",
        help="Comma-separated layers to try for every model ('default': the pooled pre-logits features).",
    ),
    pools: Optional[str] = typer.Option(
        None, "--pools", show_default="avg", help="Comma-separated poolings to try for every layer."
    ),
    baseline: str = typer.Option(
        "pixels", "--baseline", help="'pixels' (images resized to 32x32), 'pixels:SIZE', or 'none'."
    ),
    folds: int = typer.Option(
        10, "--folds", min=2, help="Stratified cross-validation folds, the same for every candidate."
    ),
    sample: Optional[int] = typer.Option(
        None,
        "--sample",
        min=2,
        show_default="all images",
        help="Score a stratified subsample of this many images (a quick answer on big datasets).",
    ),
    out: Path = typer.Option(
        Path("transferkit-compare"), "-o", "--out", help="Folder for compare.csv, compare.json and compare.png."
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", show_default="OUT/features", help="Per-candidate feature files, reused by later runs."
    ),
    reuse: Optional[list[Path]] = typer.Option(
        None,
        "--reuse",
        metavar="FILE",
        help=("An existing feature file to reuse when its provenance matches (repeatable; the .h5 files of the current "
              "folder are tried too)."),
    ),
    c: float = typer.Option(
        1.0, "--C", help="Inverse regularisation strength of the logistic regression (the same for every candidate)."
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the folds and of --sample."),
    batch_size: str = typer.Option("32", "--batch-size", "-b", help="Images per forward pass, or auto."),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, show_default="CPUs available", help="Decoding threads."
    ),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto | fp32 | bf16 | fp16 | int8 (int8: ONNX Runtime on the CPU, calibrated on the images scored).",
    ),
):
    """Which representation suits this dataset? Raw pixels vs backbones x layers x pools, by paired k-fold CV accuracy and macro-F1, ordered by LogME (a transferability score, not an accuracy)."""  # noqa: E501 (Typer help text: the first line is the command's summary)
    from ..comparison.outputs import table
    from ..comparison.run import compare as run_compare
    from ..progress import progress_bar
    from ._flags import worded
    from ._output import print_table

    result = run_compare(
        data,
        _split(models),
        layers=_split(layers) or [None],
        pools=_split(pools) or ["avg"],
        baseline=baseline,
        folds=folds,
        sample=sample,
        seed=seed,
        out=out,
        cache_dir=cache_dir,
        reuse=reuse or (),
        C=c,
        batch_size=batch_size,
        workers=workers,
        precision=precision,
        progress=lambda description: progress_bar(
            description, console, unit="fold" if description.startswith("CV ") else "img"
        ),
        log=lambda msg: console.print(f"  {esc(msg)}", highlight=False),
        error_text=worded,
    )
    print_table(console, table(result))
    best = result.best
    ties = [r.name for r in result.rows if r.ok and r is not best and r.tied_with_best]
    console.print(
        f"best CV accuracy: [bold]{esc(best.name)}[/] ({best.accuracy_mean:.3f})"
        + (f"; not significantly better than {esc(', '.join(ties))} (corrected paired t-test, 5%)" if ties else ""),
        highlight=False,
    )
    if result.dropped:
        console.print(
            f"[yellow]{len(result.dropped)} unreadable image(s) left out of every candidate[/] (see compare.json)"
        )
    console.print(
        esc(f"wrote {result.csv_path}, {result.json_path}" + (f", {result.png_path}" if result.png_path else "")),
        highlight=False,
    )
    failed = [r for r in result.rows if not r.ok]
    for r in failed:
        console.print(f"[bold red]error:[/] {esc(r.name)}: {esc(r.error)}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)
