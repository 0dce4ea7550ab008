"""What the commands print, read the way a pipeline reads it: with standard output a pipe and the
80 columns Rich assumes then, no identifier (model, layer, path, class name) may be cut or wrapped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text

from transferkit.cli._output import plain_rows, print_table


def piped(*args, cwd=None) -> subprocess.CompletedProcess:
    """The real command with standard output a pipe, at the 80 columns a pipe gets by default."""
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "transferkit", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


def whole(name: str, text: str) -> bool:
    """``name`` appears in one piece, as a cell of its own (spaces or line ends around it)."""
    return re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.M) is not None


# -- the helper, in process ---------------------------------------------------------------------
def _table(name: str) -> Table:
    t = Table("layer", "dims", title="t")
    t.add_row(Text(name), "1280")
    return t


def test_a_table_that_fits_a_terminal_is_drawn_and_one_that_does_not_becomes_plain_rows():
    long = "blocks.6.0.bn2.drop_path_with_a_name_long_enough_to_need_more_than_eighty_columns_x"
    term = Console(force_terminal=True, width=80, record=True, color_system=None)
    print_table(term, _table("blocks.0"))
    drawn = term.export_text()
    assert "┃" in drawn or "│" in drawn  # the Rich table, box and all
    print_table(term, _table(long))
    rows = term.export_text()
    assert whole(long, rows) and "…" not in rows
    assert plain_rows(term, _table(long)) == ["t", "layer" + " " * (len(long) - 5) + "  dims", f"{long}  1280"]


def test_a_pipe_always_gets_plain_rows_and_markup_in_names_stays_text():
    pipe = Console(file=open(os.devnull, "w"), width=80, record=True)
    print_table(pipe, _table("[bold]not markup[/]"))
    out = pipe.export_text()
    assert "[bold]not markup[/]" in out and "┃" not in out


# -- the commands ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_models_and_their_layers_are_whole_names_in_a_pipe():
    from transferkit.backbones import available_models
    from transferkit.backbones.describe import list_layers

    rows = available_models(())
    out = piped("models").stdout
    for name, info in rows.items():
        assert whole(name, out), name
        assert whole(info["weights"], out), info["weights"]
    assert sum("efficientnet_lite0" in line.split() for line in out.splitlines()) == 1  # `| grep` finds it

    layers = list_layers("efficientnet_lite0")["layers"]
    out = piped("models", "--layers", "efficientnet_lite0").stdout
    assert len(layers) > 100 and "…" not in out
    missing = [row["name"] for row in layers if not whole(row["name"], out)]
    assert not missing, missing


@pytest.mark.slow
def test_predict_and_inspect_print_whole_paths_and_class_names_in_a_pipe(extracted, trained, dataset_dir):
    import transferkit as tk
    from transferkit.inspection import describe_features

    out = piped("predict", trained.path, dataset_dir.resolve()).stdout  # absolute: long paths
    paths = [p.__dict__ for p in tk.predict(trained.path, [dataset_dir.resolve()], top_k=1).predictions]
    assert len(paths) == 24 and "…" not in out
    for p in paths:  # one line per image: its whole path, then its label
        assert any(line.startswith(p["path"] + "  ") and p["labels"][0] in line[len(p["path"]):]
                   for line in out.splitlines()), p["path"]

    info = describe_features(extracted.path)
    out = piped("inspect", extracted.path).stdout
    assert any(line.split(None, 1) == ["dataset_root", info["provenance"]["dataset_root"]] for line in out.splitlines())
    assert any(line.startswith("preprocess ") and line.rstrip().endswith("}") for line in out.splitlines())
    for name in info["classes"]:  # "grün stripes": spaces and non-ASCII
        assert any(line.startswith(name + "  ") for line in out.splitlines()), name


def test_version_and_help_read_well():
    from typer.testing import CliRunner

    from transferkit import __version__
    from transferkit.cli import app

    def run(*args):
        r = CliRunner().invoke(app, list(args), env={"COLUMNS": "100", "NO_COLOR": "1"})
        assert r.exit_code == 0, r.output
        return r.output

    assert run("--version").strip() == f"transferkit {__version__}"
    text = run("inspect", "--help")
    assert "<bool>" not in text and "{" not in text and "FEATURES" in text
    text = run("compare", "--help")
    assert " -k " not in text and re.search(r"--seed\b[^\n]*(\n[^-\n][^\n]*)*\[default: 42\]", text)
    assert "MODEL FEATURES" in run("evaluate", "--help")
    assert "auto" in run("compare", "--help").split("--batch-size")[1].split("--")[0]


@pytest.mark.slow
def test_predict_imagenet_names_the_daisy(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_sample_image

    Image.fromarray(load_sample_image("flower.jpg")).save(tmp_path / "flower.png")
    doc = json.loads(piped("predict", "--imagenet", tmp_path / "flower.png", "--json", "-").stdout)
    (p,) = doc["predictions"]
    assert p["labels"][0] == "daisy" and len(p["labels"]) == 5 and 0.2 < p["probabilities"][0] < 1
    assert doc["model"] == "imagenet:efficientnet_lite0"
