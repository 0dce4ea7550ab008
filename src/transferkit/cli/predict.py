"""`transferkit predict`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from ..data.walk import printable
from ._app import app, console, err, esc, friendly, print_skipped
from ._output import print_table, write_text

STDOUT = Path("-")


@app.command()
@friendly
def predict(
    paths: List[Path] = typer.Argument(
        ...,
        metavar="MODEL IMAGES",
        show_default=False,
        help=("A model file from `transferkit train`, then image files and/or folders (searched recursively). With "
              "--imagenet: only images."),
    ),
    top_k: Optional[int] = typer.Option(
        None,
        "--top-k",
        "-k",
        min=1,
        show_default="1; 5 with --imagenet",
        help="Labels to show per image, with their probabilities.",
    ),
    csv_out: Optional[Path] = typer.Option(
        None, "--csv", help="Write predictions to this CSV file ('-': standard output)."
    ),
    json_out: Optional[Path] = typer.Option(
        None, "--json", help="Write predictions to this JSON file ('-': standard output)."
    ),
    imagenet: bool = typer.Option(
        False,
        "--imagenet",
        help=("No model file: what the pretrained backbone's own ImageNet classifier says (its 1,000 classes, not "
              "yours)."),
    ),
    backbone: str = typer.Option(
        "efficientnet_lite0", "--model", "-m", help="With --imagenet: the backbone (see `transferkit models`)."
    ),
    batch_size: str = typer.Option(
        "32",
        "--batch-size",
        "-b",
        help="Images per forward pass (a ten-crop model's ten views of a picture count as ten), or auto.",
    ),
    weights: Optional[Path] = typer.Option(
        None,
        "--weights",
        help=("The backbone's weights file, if it moved since extraction (its hash must match); with --imagenet: a "
              "local weights file for --model."),
    ),
    engine: str = typer.Option("auto", "--engine", help="auto | onnxruntime | torch (see docs/engines.md)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto | fp32 | bf16 | fp16 | int8 (int8: ONNX Runtime on the CPU, calibrated on these images).",
    ),
):
    """Label new images with a trained model; or, with --imagenet, show what the pretrained network alone sees.

    Files come out in input order (a folder's images sorted by path), with paths as given; unreadable files are reported, not fatal. Exit status 0 when at least one image was predicted.
    """  # noqa: E501 (Typer help text: the first line is the command's summary)
    from ..prediction import predict as run_predict

    if csv_out == STDOUT and json_out == STDOUT:
        raise typer.BadParameter("only one of --csv and --json can write to standard output")
    to_stdout = STDOUT in (csv_out, json_out)
    out = err if to_stdout else console  # messages must not mix with data on standard output
    from ..progress import progress_bar

    if imagenet:
        from ..imagenet import classify_imagenet

        model, inputs, top_k = f"imagenet:{backbone}", paths, top_k or 5
        if not batch_size.isdigit():
            raise typer.BadParameter("--imagenet takes a number of images per batch", param_hint="--batch-size")
        with progress_bar("imagenet", err) as update:
            r = classify_imagenet(
                inputs,
                model=backbone,
                weights=str(weights) if weights else None,
                top_k=top_k,
                batch_size=int(batch_size),
                progress=update,
            )
    else:
        if len(paths) < 2:
            raise typer.BadParameter(
                "give a model file and at least one image or folder "
                "(or --imagenet IMAGES... for the backbone's own ImageNet classes)",
                param_hint="MODEL IMAGES",
            )
        model, inputs, top_k = paths[0], paths[1:], top_k or 1
        with progress_bar("predict", err) as update:
            r = run_predict(
                model,
                inputs,
                top_k=top_k,
                batch_size=batch_size,
                progress=update,
                weights=weights,
                engine=engine,
                device=device,
                precision=precision,
            )
    k = max((len(p.labels) for p in r.predictions), default=0)  # top_k, at most the number of classes
    if r.predictions and not to_stdout and (not (csv_out or json_out) or len(r.predictions) <= 50):
        print_table(console, prediction_table(r.predictions, k, "ImageNet class" if imagenet else "label"))
    if csv_out:
        write_csv(csv_out, r, k)
    if json_out:
        write_json(json_out, r, model, k)
    for path in (csv_out, json_out):
        if path and path != STDOUT:
            out.print(f"[green]wrote[/] {esc(path)}", highlight=False)
    if r.skipped:
        if to_stdout:
            err.print(f"[yellow]skipped {len(r.skipped)} unreadable file(s)[/]")
            for path, reason in r.skipped[:20]:
                err.print(f"  {esc(path)}: {esc(reason)}", highlight=False)
        else:
            print_skipped(r.skipped)
    out.print(f"{len(r.predictions)} predicted, {len(r.skipped)} skipped")
    if not r.predictions:
        what = "no image could be read" if r.skipped else "no image files found in the inputs"
        err.print(f"[bold red]error:[/] {what}", highlight=False)
        raise typer.Exit(1)


def prediction_table(predictions, k: int, what: str = "label") -> Table:
    table = Table("file", what, "probability", *([f"next {k - 1}"] if k > 1 else []))
    table.columns[2].justify = "right"
    for p in predictions:
        rest = (
            [Text(", ".join(f"{lab} {prob:.3f}" for lab, prob in zip(p.labels[1:], p.probabilities[1:])))]
            if k > 1
            else []
        )
        table.add_row(Text(p.path), Text(p.label), f"{p.confidence:.3f}", *rest)
    return table


def write_csv(path: Path, r, k: int) -> None:
    """One row per input file: predictions in input order, then the skipped files with their reason.
    A file is written whole or not at all (through a temporary file renamed into place)."""
    fh = io.StringIO(newline="")
    w = csv.writer(fh)
    w.writerow(["path"] + [c for i in range(k) for c in (f"label_{i + 1}", f"probability_{i + 1}")] + ["error"])
    for p in r.predictions:
        w.writerow([p.path] + [v for lab, prob in zip(p.labels, p.probabilities) for v in (lab, f"{prob:.6f}")] + [""])
    for s, why in r.skipped:
        w.writerow([s] + [""] * (2 * k) + [why])
    write_text(path, fh.getvalue())


def write_json(path: Path, r, model: Path, k: int) -> None:
    text = json.dumps(
        {
            "model": printable(model),
            "top_k": k,
            "predictions": [
                {"path": p.path, "labels": p.labels, "probabilities": p.probabilities} for p in r.predictions
            ],
            "skipped": [{"path": s, "reason": why} for s, why in r.skipped],
        },
        indent=2,
        ensure_ascii=False,
        allow_nan=False,
    )
    write_text(path, text + "\n")

