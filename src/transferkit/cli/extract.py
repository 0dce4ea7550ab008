"""`transferkit extract`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import app, console, friendly, print_skipped

@app.command()
@friendly
def extract(
    data: Path = typer.Argument(..., help="Folder with one sub-folder per class, or a CSV manifest (path,label)."),
    output: Path = typer.Option(..., "-o", "--output", help="Feature file to write (HDF5)."),
    model: str = typer.Option("efficientnet_lite0", "--model", "-m", help="Backbone (see `transferkit models`)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per forward pass."),
    test_size: float = typer.Option(0.25, "--test-size", min=0.0, max=0.95, help="Fraction of each class held out as the test split."),
    seed: int = typer.Option(42, "--seed", help="Seed of the train/test split."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Decoding threads (default: CPUs available)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted --ray run: only its unfinished shards are computed."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="auto|local|ADDRESS", rich_help_panel="Distributed (Ray)",
                                      help="Run on a Ray cluster: 'auto' (this machine's cluster, else a local one), 'local', or host:port."),
    ray_workers: Optional[int] = typer.Option(None, "--ray-workers", min=1, rich_help_panel="Distributed (Ray)",
                                              help="Worker actors, each holding a backbone (default: as many as the cluster fits)."),
    ray_cpus_per_worker: float = typer.Option(1.0, "--ray-cpus-per-worker", min=0.01, rich_help_panel="Distributed (Ray)",
                                              help="CPUs per worker (its decode and inference threads)."),
    ray_gpus_per_worker: float = typer.Option(0.0, "--ray-gpus-per-worker", min=0.0, rich_help_panel="Distributed (Ray)",
                                              help="GPUs per worker (0: CPU workers; 0.5: two workers share a GPU)."),
    ray_shard_size: int = typer.Option(256, "--ray-shard-size", min=1, rich_help_panel="Distributed (Ray)",
                                       help="Images per shard: the unit of work, retry, resume and part file."),
):
    """Turn every image into a feature vector and store them, with labels and provenance, in HDF5."""
    from .. import api
    from ..progress import progress_bar

    with progress_bar("extract", console) as update:
        r = api.extract(data, output, model=model, batch_size=batch_size, test_size=test_size, seed=seed,
                        workers=workers, overwrite=overwrite, progress=update, resume=resume, ray=ray,
                        ray_workers=ray_workers, ray_cpus_per_worker=ray_cpus_per_worker,
                        ray_gpus_per_worker=ray_gpus_per_worker, ray_shard_size=ray_shard_size)
    console.print(
        f"[green]wrote[/] {r.path}: {r.n_rows} rows ({r.n_train} train, {r.n_test} test), "
        f"{len(r.class_counts)} classes, {len(r.skipped)} skipped, "
        f"{r.n_images} images in {r.seconds:.1f} s ({r.images_per_second:.1f} img/s)"
    )
    if getattr(r, "n_shards", None) is not None:  # a distributed run (transferkit.distributed)
        reused = f", {r.shards_reused} kept from the interrupted run" if r.shards_reused else ""
        console.print(f"ray: {r.n_shards} shards on {r.workers} workers ({', '.join(r.hosts) or '-'}){reused}", highlight=False)
    print_skipped(r.skipped)
