"""`transferkit extract`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import app, console, friendly, print_skipped


@app.command()
@friendly
def extract(
    data: Path = typer.Argument(..., help="Folder with one sub-folder per class, or a CSV manifest (path,label)."),
    output: Path = typer.Option(..., "-o", "--output", help="Feature file to write (HDF5)."),
    model: str = typer.Option("efficientnet_lite0", "--model", "-m", help="Backbone: efficientnet_lite0/1/2 (offline), timm:<name>, torchvision:<name> (see `transferkit models`)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Local weights file (.safetensors or .pth) for the model, or 'random'; default: its pretrained weights."),
    layer: Optional[List[str]] = typer.Option(None, "--layer", help="Layer to take features from (repeat for several, stored one dataset each; see `transferkit models --layers MODEL`). Default: pre_logits."),
    pool: Optional[str] = typer.Option(None, "--pool", help="avg, max, avgmax, gem, flatten; for transformers cls, mean, cls+mean. Default: the model's own pooling."),
    image_size: Optional[str] = typer.Option(None, "--image-size", help="Input size N or HxW instead of the model's pretrained one."),
    crop_pct: Optional[float] = typer.Option(None, "--crop-pct", help="Centre-crop fraction instead of the model's (resize to size/crop_pct, crop size)."),
    no_crop: bool = typer.Option(False, "--no-crop", help="Resize the whole picture to the input size (no centre crop; aspect ratio not kept)."),
    batch_size: str = typer.Option("32", "--batch-size", "-b", help="Images per forward pass, or auto."),
    test_size: float = typer.Option(0.25, "--test-size", min=0.0, max=0.95, help="Fraction of each class held out as the test split."),
    seed: int = typer.Option(42, "--seed", help="Seed of the train/test split."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Decoding threads (default: CPUs available)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    engine: str = typer.Option("auto", "--engine", help="auto | onnxruntime | torch (see docs/engines.md)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16 (auto: fp32 on CPU, fp16 on CUDA)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted extraction of OUTPUT (same settings); start it if it is not there."),
    update: bool = typer.Option(False, "--update", help="Bring OUTPUT up to date with the dataset: extract only new files, drop rows of removed ones."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32 (default) or float16 (half the file; resumes keep the file's)."),
    compression: Optional[str] = typer.Option(None, "--compression", help="none (default), lzf (fast) or gzip (smaller)."),
    buffer_rows: int = typer.Option(1000, "--buffer-rows", min=1, help="Rows gathered in memory between commits to the file (what a crash can cost)."),
):
    """Turn every image into a feature vector and store them, with labels and provenance, in HDF5."""
    from .. import api
    from ..backbones.registry import parse_image_size
    from ..progress import progress_bar

    with progress_bar("extract", console) as bar:
        r = api.extract(data, output, model=model, batch_size=batch_size, test_size=test_size, seed=seed,
                        workers=workers, overwrite=overwrite, progress=bar, resume=resume, update=update,
                        dtype=dtype, compression=compression, buffer_rows=buffer_rows,
                        weights=weights, layer=layer or None, pool=pool, image_size=parse_image_size(image_size),
                        crop_pct=crop_pct, crop=False if no_crop else None,
                        engine=engine, device=device, precision=precision)
    if r.status == "up to date":
        console.print(f"[green]{r.path} is complete and up to date[/] ({r.n_rows} rows); nothing to do")
        return
    how = {"resumed": f"resumed {r.path} ({r.rows_before} rows were already there)",
           "updated": f"updated {r.path} (kept {r.rows_before} rows, {r.n_added} new files, {r.n_removed} removed)"}
    console.print(
        f"[green]{how.get(r.status, f'wrote {r.path}')}[/]: {r.n_rows} rows ({r.n_train} train, {r.n_test} test), "
        f"{len(r.class_counts)} classes, {len(r.skipped)} skipped, "
        f"{r.n_processed} images in {r.seconds:.1f} s ({r.images_per_second:.1f} img/s)"
    )
    print_skipped(r.skipped)
