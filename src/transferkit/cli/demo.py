"""`transferkit demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console, friendly


@app.command()
@friendly
def demo(
    out: Path = typer.Option(
        Path("transferkit-demo"), "--out", help="Folder for the demo's images, features and models."
    ),
):
    """Run the whole flow offline on data that ships with the install, and the digits lesson (ImageNet features do not fit every dataset)."""  # noqa: E501 (Typer help text: the first line is the command's summary)
    from ..demo import run_demo

    run_demo(out, console)
