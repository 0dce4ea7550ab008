"""`transferkit extract`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import List, Optional

import typer
from rich.text import Text

from ._app import app, console, err, esc, friendly, print_ignored, print_skipped


@app.command()
@friendly
def extract(
    data: Path = typer.Argument(
        ...,
        metavar="DATA",
        help=("Folder with one sub-folder per class (or split folders train/ valid/ test/ holding them), or a CSV "
              "manifest (path,label[,split])."),
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Feature file to write (HDF5)."),
    model: str = typer.Option(
        "efficientnet_lite0",
        "--model",
        "-m",
        help="Backbone: efficientnet_lite0/1/2 (offline), timm:<name>, torchvision:<name> (see `transferkit models`).",
    ),
    weights: Optional[str] = typer.Option(
        None,
        "--weights",
        show_default="the model's pretrained weights",
        help="Local weights file (.safetensors or .pth) for the model, or 'random'.",
    ),
    layer: Optional[List[str]] = typer.Option(
        None,
        "--layer",
        show_default="pre_logits",
        help=("Layer to take features from (repeat for several, stored one dataset each; see `transferkit models "
              "--layers MODEL`)."),
    ),
    pool: Optional[str] = typer.Option(
        None,
        "--pool",
        show_default="the model's own pooling",
        help="avg, max, avgmax, gem, flatten; for transformers cls, mean, cls+mean.",
    ),
    image_size: Optional[str] = typer.Option(
        None, "--image-size", show_default="the model's pretrained size", help="Input size N or HxW."
    ),
    crop_pct: Optional[float] = typer.Option(
        None, "--crop-pct", help="Centre-crop fraction instead of the model's (resize to size/crop_pct, crop size)."
    ),
    no_crop: bool = typer.Option(
        False, "--no-crop", help="Resize the whole picture to the input size (no centre crop; aspect ratio not kept)."
    ),
    batch_size: str = typer.Option("32", "--batch-size", "-b", help="Images per forward pass, or auto."),
    test_size: float = typer.Option(
        0.25, "--test-size", min=0.0, max=0.95, help="Fraction of each class held out as the test split."
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the train/test split."),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, show_default="CPUs available", help="Decoding threads."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    engine: str = typer.Option("auto", "--engine", help="auto | onnxruntime | torch (see docs/engines.md)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help=("auto | fp32 | bf16 | fp16 | int8 (auto: fp32 on CPU, fp16 on CUDA; int8: ONNX Runtime on the CPU, "
              "calibrated on ~300 of your images, see docs/engines.md)."),
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Finish an interrupted extraction of OUTPUT (same settings); start it if it is not there.",
    ),
    update: bool = typer.Option(
        False,
        "--update",
        help="Bring OUTPUT up to date with the dataset: extract only new files, drop rows of removed ones.",
    ),
    dtype: Optional[str] = typer.Option(
        None, "--dtype", show_default="float32; a resume keeps the file's", help="float32 or float16 (half the file)."
    ),
    compression: Optional[str] = typer.Option(
        None, "--compression", show_default="none", help="none, lzf (fast) or gzip (smaller)."
    ),
    buffer_rows: int = typer.Option(
        1000,
        "--buffer-rows",
        min=1,
        help="Rows gathered in memory between commits to the file (what a crash can cost).",
    ),
    ray: Optional[str] = typer.Option(
        None,
        "--ray",
        metavar="auto|local|ADDRESS",
        rich_help_panel="Distributed (Ray)",
        help="Run on a Ray cluster: 'auto' (this machine's cluster, else a local one), 'local', or host:port.",
    ),
    ray_workers: Optional[int] = typer.Option(
        None,
        "--ray-workers",
        min=1,
        rich_help_panel="Distributed (Ray)",
        help="Worker actors, each holding a backbone (default: as many as the cluster fits).",
    ),
    ray_cpus_per_worker: float = typer.Option(
        1.0,
        "--ray-cpus-per-worker",
        min=0.01,
        rich_help_panel="Distributed (Ray)",
        help="CPUs per worker (its decode and inference threads).",
    ),
    ray_gpus_per_worker: float = typer.Option(
        0.0,
        "--ray-gpus-per-worker",
        min=0.0,
        rich_help_panel="Distributed (Ray)",
        help="GPUs per worker (0: CPU workers; 0.5: two workers share a GPU).",
    ),
    ray_shard_size: int = typer.Option(
        256,
        "--ray-shard-size",
        min=1,
        rich_help_panel="Distributed (Ray)",
        help="Images per shard: the unit of work and retry.",
    ),
):
    """Turn every image into a feature vector and store them, with labels and provenance, in HDF5."""
    from ..backbones.registry import parse_image_size
    from ..extraction import extract as run_extract
    from ..progress import progress_bar

    with progress_bar("extract", console) as bar, _says_how_to_resume(output):
        r = run_extract(
            data,
            output,
            model=model,
            batch_size=batch_size,
            test_size=test_size,
            seed=seed,
            workers=workers,
            overwrite=overwrite,
            progress=bar,
            resume=resume,
            update=update,
            dtype=dtype,
            compression=compression,
            buffer_rows=buffer_rows,
            weights=weights,
            layer=layer or None,
            pool=pool,
            image_size=parse_image_size(image_size),
            crop_pct=crop_pct,
            crop=False if no_crop else None,
            engine=engine,
            device=device,
            precision=precision,
            ray=ray,
            ray_workers=ray_workers,
            ray_cpus_per_worker=ray_cpus_per_worker,
            ray_gpus_per_worker=ray_gpus_per_worker,
            ray_shard_size=ray_shard_size,
        )
    if r.status == "up to date":
        console.print(f"[green]{esc(r.path)} is complete and up to date[/] ({r.n_rows} rows); nothing to do")
        return
    how = {
        "resumed": f"resumed {esc(r.path)} ({r.rows_before} rows were already there)",
        "updated": f"updated {esc(r.path)} (kept {r.rows_before} rows, {r.n_added} new files, {r.n_removed} removed)",
    }
    val = f", {r.n_val} val" if r.n_val else ""
    console.print(
        f"[green]{how.get(r.status, f'wrote {esc(r.path)}')}[/]: {r.n_rows} rows ({r.n_train} train, {r.n_test} "
        f"test{val}), "
        f"{len(r.class_counts)} classes, {len(r.skipped)} skipped, "
        f"{r.n_processed if r.n_processed is not None else r.n_images} images in {r.seconds:.1f} s "
        f"({r.images_per_second:.1f} img/s)"
    )
    if r.ray is not None and r.ray["shards"]:  # a distributed run (transferkit.distributed)
        console.print(
            f"ray: {r.ray['shards']} shards on {r.ray['workers']} workers ({esc(', '.join(r.ray['hosts']) or '-')})",
            highlight=False,
        )
    _print_dataset_notes(r)
    print_skipped(r.skipped)
    print_ignored(getattr(r, "ignored", []))
    single = [name for name, n in r.class_counts.items() if n == 1]
    if single and test_size > 0:
        console.print(
            f"[yellow]warning:[/] {len(single)} class(es) have one image only, so none of it in the test "
            f"split: {esc(', '.join(single[:10]))}{' …' if len(single) > 10 else ''}",
            highlight=False,
        )


def _print_dataset_notes(r) -> None:
    """Where the split came from (when the dataset brought it), then notes and warnings about the dataset."""
    from ..data.split import STRATIFIED, describe_split_source

    if r.split_source != STRATIFIED:
        console.print(
            f"split: from {describe_split_source({'split_source': r.split_source})}; --test-size and --seed "
            "do not apply",
            highlight=False,
        )
    for note in r.notes:  # class and folder names are user data: never markup
        console.print(Text(f"note: {note}"))
    for warning in r.warnings:
        err.print(Text.assemble(("warning:", "yellow"), f" {warning}"), soft_wrap=True)


@contextlib.contextmanager
def _says_how_to_resume(output: Path):
    """On Ctrl-C: what was kept and the command that finishes the file (the rows committed so far stay)."""
    try:
        yield
    except KeyboardInterrupt:
        message = _kept(output)
        if message is None:  # no file yet, a finished one, or one we cannot read: the plain message
            raise
        err.print(f"[bold red]interrupted[/]: {esc(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None


def _kept(output: Path) -> str | None:
    from ..store import open_features
    from ._flags import resume_command

    try:
        with open_features(output) as ff:
            p = ff.progress
            if p is not None:
                return (
                    f"{p['inputs_done']} of {p['inputs_total']} images done and kept in {output}; "
                    f"finish with `{resume_command(ff)}`"
                )
    except Exception:
        pass
    return None
