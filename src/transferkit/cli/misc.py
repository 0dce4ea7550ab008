"""`transferkit models` and `transferkit demo`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ._app import app, console, friendly

@app.command()
@friendly
def models():
    """List the backbones and whether their weights are available offline right now."""
    from ..backbones import available_models

    table = Table("model", "architecture", "offline weights", "package")
    for name, info in available_models().items():
        table.add_row(name, info["architecture"], "[green]yes[/]" if info["offline"] else "no", info["package"])
    console.print(table)


@app.command()
@friendly
def demo(
    out: Path = typer.Option(Path("transferkit-demo"), "--out", help="Folder for the demo's images, features and models."),
):
    """Run the whole flow offline on data that ships with the install, and the seeds' digits lesson."""
    from ..demo import run_demo

    run_demo(out, console)
