"""`transferkit models`."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from ._app import app, console, friendly
from ._output import print_table


@app.command()
@friendly
def models(
    names: Optional[List[str]] = typer.Argument(
        None, metavar="MODEL...", help="More models to describe, e.g. timm:convnext_small torchvision:resnet101."
    ),
    layers: Optional[str] = typer.Option(
        None, "--layers", help="List MODEL's layers with their output shapes instead."
    ),
    depth: Optional[int] = typer.Option(
        None, "--depth", min=1, help="With --layers: only layers nested at most this deep."
    ),
    image_size: Optional[str] = typer.Option(
        None, "--image-size", help="With --layers: input size N or HxW (default: the model's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """List backbones: feature size, input size, parameters, and whether their weights are on this machine now."""
    import json

    if layers:
        from ..backbones.describe import list_layers
        from ..backbones.registry import parse_image_size

        info = list_layers(layers, image_size=parse_image_size(image_size), max_depth=depth)
        if as_json:
            print(json.dumps(info, indent=2))
            return
        h, w = info["input_size"]
        table = Table("layer", "type", "output shape", "dims (default pool)", title=Text(f"{layers} at {h}x{w}"))
        for row in info["layers"]:
            shape = "x".join(map(str, row["shape"])) if row["shape"] else "-"
            dim = str(row["dim"]) if row["dim"] else ("runs %d times" % row["calls"] if row["calls"] > 1 else "-")
            table.add_row(Text(row["name"]), Text(row["type"]), shape, dim)
        print_table(console, table)
        console.print(
            Text(
                "use with: transferkit extract DATA -o OUT.h5 --model "
                + layers
                + " --layer NAME [--layer NAME2] [--pool POOL]"
            )
        )
        return

    from ..backbones import available_models

    rows = available_models(names or ())
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("model", "features", "input", "params", "offline weights", "weights from")
    for name, info in rows.items():
        h, w = info["input_size"]
        table.add_row(
            Text(name),
            str(info["feature_dim"]),
            f"{h}x{w}",
            f"{info['params'] / 1e6:.1f}M",
            "[green]yes[/]" if info["offline"] else "no",
            Text(info["weights"]),
        )
    print_table(console, table)
    console.print(
        "any timm:<name> or torchvision:<name> works (weights from its hub, cached); "
        "--weights PATH loads a local file; `transferkit models --layers MODEL` lists layers"
    )
