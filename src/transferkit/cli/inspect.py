"""`transferkit inspect`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from ._app import app, console, err, esc, friendly, print_skipped
from ._output import print_table


@app.command()
@friendly
def inspect(
    features: Path = typer.Argument(..., metavar="FEATURES", help="Feature file (HDF5)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document instead of tables."),
    verify: bool = typer.Option(
        False, "--verify", help="Also check shapes, counts, label range, NaN/Inf and provenance; exit 1 on a problem."
    ),
):
    """Show provenance, rows per class and split, skipped files and completeness of a feature file."""
    from ..inspection import describe_features
    from ..store.working import DamagedFileError
    from ._flags import extract_command

    checks = None
    if verify:
        from ..store.verify import verify_features

        checks = verify_features(features)
    try:
        info = describe_features(features)
    except DamagedFileError:
        if checks is None or checks.ok:
            raise
        info = None  # labels or split values out of range: the checks below say which
    if info is not None:  # the command that finishes an incomplete file, in place of its settings
        request = info.pop("extraction_request")
        info["resume_command"] = request and extract_command(request[0], features, request[1], "--resume")
    if checks is not None and info is not None:
        info["verify"] = {"ok": checks.ok, "checks": [c.__dict__ for c in checks.checks]}
    if info is None:
        _print_checks(features, checks)
    if as_json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        if checks is not None and not checks.ok:
            raise typer.Exit(1)
        return
    if info["complete"]:
        status = "[green]complete[/]"
    else:
        p = info["progress"]
        done = f"{p['inputs_done']} of {p['inputs_total']} images done; " if p else ""
        status = f"[bold red]INCOMPLETE[/] ({done}finish it with `{esc(info['resume_command'])}`)"
    storage = info["dtype"] + (f", {info['compression']}" if info["compression"] else "")
    console.print(
        f"[bold]{esc(features)}[/]: {info['n_rows']} rows x {info['feature_dim']} features ({storage}), {status}",
        highlight=False,
    )
    prov = Table(show_header=False, box=None)
    for key in (
        "model",
        "layer",
        "pool",
        "weights",
        "weights_sha256",
        "dataset_root",
        "test_size",
        "seed",
        "created",
        "engine",
    ):
        if key in info["provenance"]:
            prov.add_row(key, Text(str(info["provenance"][key])))
    prov.add_row("preprocess", Text(json.dumps(info["provenance"].get("preprocess"))))
    prov.add_row("split from", Text(info["split_from"]))
    print_table(console, prov)
    splits = list(next(iter(info["classes"].values()), {"train": 0, "test": 0}))
    table = Table("class", *splits, "total")
    for name, c in info["classes"].items():
        table.add_row(Text(name), *(str(c[s]) for s in splits), str(sum(c.values())))
    table.add_row("all", *(str(sum(c[s] for c in info["classes"].values())) for s in splits), str(info["n_rows"]))
    print_table(console, table)
    print_skipped([(s["path"], s["reason"]) for s in info["skipped"]])
    if checks is not None:
        _print_checks(features, checks)


def _print_checks(features: Path, checks) -> None:
    if checks is not None:
        for c in checks.checks:
            mark = "[green]ok[/]  " if c.ok else "[bold red]FAIL[/]"
            console.print(f"  {mark} {c.name}: {esc(c.detail)}", highlight=False)
        if not checks.ok:
            err.print(
                f"[bold red]error:[/] {esc(features)}: verify found {len(checks.problems)} problem(s): "
                + esc("; ".join(f"{c.name} ({c.detail})" for c in checks.problems)),
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)
        console.print(f"[green]verify: all {len(checks.checks)} checks passed[/]")
