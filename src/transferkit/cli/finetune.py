"""`transferkit finetune`."""

from __future__ import annotations

import contextlib
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from ._app import app, console, err, friendly, print_skipped

# what the refitted head's features were averaged over, for the closing line
VIEWS = {"ten-crop": ", ten views each", "hflip": ", each with its mirror image"}


@app.command()
@friendly
def finetune(
    data: Path = typer.Argument(..., help="Folder with one sub-folder per class, or a CSV manifest (path,label)."),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Model file to write (.safetensors), with the fine-tuned backbone inside."
    ),
    model: str = typer.Option(
        "efficientnet_lite0",
        "--model",
        "-m",
        help="Backbone: efficientnet_lite0/1/2 (offline) or a timm EfficientNet (timm:efficientnet_b0, ...).",
    ),
    unfreeze: str = typer.Option(
        "4", "--unfreeze", help="Top stages to train (the 1x1 head convolution always trains), or 'all'."
    ),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Most fine-tuning epochs (early stopping may end sooner)."),
    lr: float = typer.Option(
        1e-4,
        "--lr",
        min=0.0,
        help=("Learning rate of the head (AdamW); the default was chosen on flowers17, where 3e-4 and 1e-3 lowered "
              "the validation accuracy."),
    ),
    backbone_lr: Optional[float] = typer.Option(
        None, "--backbone-lr", min=0.0, help="Learning rate of the unfrozen stages (default: --lr)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per step."),
    augment: str = typer.Option(
        "standard",
        "--augment",
        help=("standard (random resized crop + horizontal flip) or none (the frozen part's output is then cached: "
              "faster epochs)."),
    ),
    features: Optional[Path] = typer.Option(
        None,
        "--features",
        help=("Feature file from `extract` of the same data and backbone: the linear probe uses it instead of "
              "recomputing frozen features."),
    ),
    test_size: float = typer.Option(
        0.25, "--test-size", min=0.0, max=0.95, help="Fraction of each class held out as the test split (as `extract`)."
    ),
    seed: int = typer.Option(
        42, "--seed", help="Seed of the split (as `extract`), the validation part, shuffling and augmentation."
    ),
    val_size: float = typer.Option(
        0.15, "--val-size", min=0.01, max=0.9, help="Fraction of the train split held out for early stopping."
    ),
    patience: int = typer.Option(
        3, "--patience", min=1, help="Stop after this many epochs without a better validation accuracy."
    ),
    label_smoothing: float = typer.Option(
        0.0, "--label-smoothing", min=0.0, max=0.99,
        help="Label smoothing of the cross-entropy loss (0.1 pulled the probe's head away and lowered validation "
             "accuracy on flowers17).",
    ),
    refit: bool = typer.Option(
        True,
        "--refit/--no-refit",
        help=("After fine-tuning, fit the logistic-regression head again (scaling and C by cross-validation) on the "
              "tuned features of every train image, validation part included, as `train` does on frozen ones."),
    ),
    tta: str = typer.Option(
        "ten-crop",
        "--tta",
        help=("Test-time augmentation of the fine-tuned model, in predict, evaluate and the exported graph alike: "
              "ten-crop (features averaged over the centre and four corner crops and their mirror images; ten "
              "times the inference work), hflip (each picture and its mirror image; twice) or none."),
    ),
    max_minutes: float = typer.Option(
        12.0,
        "--max-minutes",
        min=0.0,
        help=("Time budget of the whole run: after the first epoch, the number of epochs is cut to what fits "
              "(0: no budget, always --epochs)."),
    ),
    bn: str = typer.Option(
        "frozen", "--bn", help="BatchNorm statistics: frozen (ImageNet's; the default, safer on small data) or train."
    ),
    image_size: Optional[str] = typer.Option(
        None, "--image-size", help="Input size N or HxW instead of the model's pretrained one."
    ),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto | fp32 | bf16 | fp16 (auto: fp32 on the CPU, bf16 on CUDA GPUs that have it, else fp16).",
    ),
    lower_precision: str = typer.Option(
        "auto",
        "--lower-precision",
        help=("Precision of the frozen lower part on augmented training pictures: auto (bf16 on a CPU with native "
              "bf16 when training in fp32) | fp32 | bf16 | fp16."),
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Decoding threads (default: CPUs available)."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted run from OUTPUT's checkpoint (same settings); start it if there is none.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output (and drop its checkpoint)."),
):
    """Fine-tune the top of the backbone: linear probe first, then the top stages (LP-FT), early stopping on validation."""  # noqa: E501 (Typer help text: the first line is the command's summary)
    from ..backbones.registry import parse_image_size
    from ..finetuning import finetune as run
    from ..finetuning.checkpoint import checkpoint_path

    with _progress() as progress, _says_what_was_kept(output, checkpoint_path(output)):
        r = run(
            data,
            output,
            model=model,
            unfreeze=unfreeze,
            epochs=epochs,
            lr=lr,
            backbone_lr=backbone_lr,
            batch_size=batch_size,
            augment=augment,
            features=features,
            test_size=test_size,
            seed=seed,
            val_size=val_size,
            patience=patience,
            label_smoothing=label_smoothing,
            refit=refit,
            tta=tta,
            max_minutes=max_minutes or None,
            bn=bn,
            image_size=parse_image_size(image_size),
            precision=precision,
            lower_precision=lower_precision,
            device=device,
            workers=workers,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
        )
    c = r.counts
    per_epoch = f", {sum(r.epoch_seconds) / len(r.epoch_seconds):.1f} s per epoch" if r.epoch_seconds else ""
    if r.planned_epochs < epochs:
        per_epoch += f"; the {max_minutes:g}-minute budget allowed {r.planned_epochs} of {epochs} epochs"
    resumed = f" (resumed after epoch {r.resumed_from})" if r.resumed_from else ""
    console.print(
        f"[green]wrote {r.path}[/]{resumed}: {c['train']} train, {c['val']} validation, {c['test']} test images; "
        f"{r.epochs_run} epoch(s) in {r.seconds:.1f} s{per_epoch} ({r.precision}, cached: {r.cache})",
        highlight=False,
    )
    best = r.history[r.best_epoch]
    console.print(
        f"best epoch {r.best_epoch}"
        + (" (the linear probe)" if r.best_epoch == 0 else "")
        + f": validation accuracy {best['val_accuracy']:.4f}"
        + (", stopped early" if r.stopped_early else ""),
        highlight=False,
    )
    if r.test.get("n_test"):
        console.print(
            f"[bold]test split[/] ({r.test['n_test']} images): frozen backbone + linear probe "
            f"{r.probe_test['accuracy']:.4f}, fine-tuned {r.test['accuracy']:.4f}"
            + (f" (head refitted on all {r.refit['rows']} train images{VIEWS.get(tta, '')}; the fine-tuned head: "
               f"{r.tuned_head_test['accuracy']:.4f})" if r.refit else ""),
            highlight=False,
        )
    print_skipped(r.failures)


@contextlib.contextmanager
def _progress():
    """One bar per stage (the frozen pass, each epoch)."""
    from ..progress import progress_bar

    bars: dict = {}
    with contextlib.ExitStack() as stack:

        def update(what: str, done: int, total: int) -> None:
            if what not in bars:
                bars.clear()
                stack.close()
                bars[what] = stack.enter_context(progress_bar(what, console))
            bars[what](done, total)

        yield update


@contextlib.contextmanager
def _says_what_was_kept(output: Path, ckpt: Path):
    """On Ctrl-C: how many epochs the checkpoint keeps, and the command that continues."""
    try:
        yield
    except KeyboardInterrupt:
        from ..finetuning.checkpoint import load_checkpoint

        try:
            epoch = load_checkpoint(ckpt).epoch
        except Exception:
            err.print(f"[bold red]interrupted[/] before the first checkpoint; nothing was kept for {output}")
            raise typer.Exit(130) from None
        args = [a for a in sys.argv[1:] if a != "--resume"]
        what = "the linear probe" if epoch == 0 else f"the linear probe and {epoch} epoch(s)"
        err.print(
            f"[bold red]interrupted[/]: {what} kept in {ckpt}; continue with `transferkit {shlex.join(args)} --resume`",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
