"""Every command on a generated hostile corpus (tests/hostile.py), run as a user runs it.

For each run: it ends within a time limit (no hang on a FIFO or a symlink loop), exits 0 or 1, prints
no traceback (``--debug`` not given), no "unexpected" error (the last-resort handler for bugs), an error
of exactly one line, peak memory (the child's own max RSS, from ``wait4``) under 3 GB, and what it
wrote can be read by the next command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO
from hostile import make_image_corpus, make_manifests, tampered_features, tampered_models

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and wait4")]

TIME_LIMIT = 120  # seconds per command: far above a normal run, far below a hang
MEMORY_LIMIT = 3 << 30  # bytes of peak RSS per command


@dataclass
class Run:
    args: tuple
    code: int
    out: str
    err: str
    max_rss: int  # bytes

    def __str__(self) -> str:
        cmd = " ".join(map(str, self.args))
        return f"transferkit {cmd} -> {self.code}, {self.max_rss >> 20} MB\n{self.out}\n{self.err}"


def run(*args, cwd: Path | None = None) -> Run:
    """The real CLI in a child process; its own peak RSS from ``wait4``; killed after TIME_LIMIT."""
    env = {
        **os.environ,
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "transferkit", *map(os.fsencode, map(str, args))],
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        timer = threading.Timer(TIME_LIMIT, lambda: os.kill(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        r = Run(
            args,
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            usage.ru_maxrss * 1024,
        )
    assert r.code != -signal.SIGKILL, f"killed after {TIME_LIMIT} s (a hang?): {r}"
    assert r.code in (0, 1), f"exit status {r.code}: {r}"
    assert "Traceback" not in r.out + r.err, f"traceback: {r}"
    assert "error: unexpected" not in r.err, f"an unhandled exception: {r}"
    assert r.max_rss < MEMORY_LIMIT, f"peak RSS {r.max_rss >> 20} MB: {r}"
    if r.code == 1:
        errors = [line for line in r.err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, f"expected one error line: {r}"
    return r


def cli(*args) -> Run:
    """The same checks as :func:`run`, for a command run in this process (Typer's CliRunner): much
    cheaper, for the many files that are refused on opening. Memory and hangs are what :func:`run`
    is for."""
    from typer.testing import CliRunner

    from transferkit.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})
    r = Run(args, result.exit_code, result.stdout, result.stderr, 0)
    assert result.exception is None or isinstance(result.exception, SystemExit), f"{result.exception!r}: {r}"
    assert r.code in (0, 1), f"exit status {r.code}: {r}"
    assert "Traceback" not in r.out + r.err and "error: unexpected" not in r.err, r
    if r.code == 1:
        errors = [line for line in r.err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, f"expected one error line: {r}"
    return r


def refused(r: Run, *words: str) -> str:
    """The error line of a refusal, which must name every one of ``words``."""
    assert r.code == 1, f"expected a refusal: {r}"
    line = next(line for line in r.err.splitlines() if line.startswith("error:"))
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    return line


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = root / "DATA"
    made = make_image_corpus(data)
    made.update({f"csv_{k}": v for k, v in make_manifests(data).items()})
    return root, data, made


@pytest.fixture(scope="module")
def pipeline(corpus):
    """extract -> train on the corpus; every later test reads these."""
    root, data, _ = corpus
    features, model = root / "f.h5", root / "m.safetensors"
    r = run("extract", data, "-o", features, "--batch-size", "8")
    assert r.code == 0, r
    r = run("train", features, "-o", model, "--cv", "2")
    assert r.code == 0, r
    return features, model, r


def test_extract_reports_every_hostile_entry_and_stays_bounded(corpus, pipeline):
    root, data, made = corpus
    features, _, _ = pipeline
    r = run("inspect", features, "--verify")
    assert r.code == 0, r
    assert "checksums: " in r.out and "blocks match" in r.out
    import transferkit as tk

    with tk.open_features(features) as ff:
        paths, skipped = ff.paths, dict(ff.skipped)
        assert sorted(ff.label_names) == ["c[", "cat", "dog"]
    # each real picture once: no row through cat/loop, cat/up, dog/catlink or dog/alias.jpg
    assert len(paths) == len(set(paths)) and not any(p.startswith(("cat/loop", "cat/up", "dog/catlink")) for p in paths)
    assert "dog/alias.jpg" not in paths and "cat/00.jpg" in paths
    # very long strips are bounded work, not refused; markup and control characters are plain names
    assert {"cat/wide.png", "dog/tall.png", "dog/wide20k.png", "cat/[blink]bad.jpg", "c[/bold]x.jpg"} <= set(paths)
    assert "FIFO" in skipped["cat/pipe.jpg"] and "decompression bomb" in skipped["dog/bomb.png"]
    assert "cat/broken.jpg" in skipped
    assert "not valid UTF-8" in r.out + run("extract", data, "-o", root / "again.h5").out


def test_extract_again_with_resume_and_a_symlinked_output(corpus, pipeline):
    root, data, _ = corpus
    features, _, _ = pipeline
    alias = root / "alias.h5"
    os.symlink(features.name, alias)
    r = run("extract", data, "-o", alias, "--resume", "--batch-size", "8")
    assert r.code == 0 and "up to date" in r.out, r


def test_markup_in_names_and_labels_is_printed_literally(corpus, pipeline):
    root, data, made = corpus
    features, model, train = pipeline
    r = cli("inspect", features)
    assert r.code == 0 and "[blink]bad.jpg" not in r.out  # not a skipped file: a row
    assert "c[" in r.out
    r = run("predict", model, data / "cat" / "[blink]bad.jpg", data / "c[" / "bold]x.jpg")
    assert r.code == 0 and "[blink]bad.jpg" in r.out and "bold]x.jpg" in r.out, r
    r = run("extract", made["csv_lonely"], "-o", root / "lonely.h5")
    assert r.code == 0 and "one image only" in r.out and "lonely" in r.out, r
    r = run("extract", made["csv_good"], "-o", root / "csv.h5")
    assert r.code == 0 and "kept once" in r.out, r
    r = cli("train", root / "csv.h5", "-o", root / "csv.safetensors", "--cv", "2")
    assert r.code == 0 and "[/red]cat" in r.out, r
    r = cli("evaluate", root / "csv.safetensors", root / "csv.h5")
    assert r.code == 0 and "[/red]cat" in r.out, r
    r = run("predict", root / "csv.safetensors", data / "cat" / "00.jpg")
    assert r.code == 0 and "[/red]cat" in r.out, r
    r = cli("inspect", root / "csv.h5", "--verify")
    assert r.code == 0, r


def test_conflicting_csv_rows_are_refused(corpus):
    root, _, made = corpus
    r = run("extract", made["csv_conflict"], "-o", root / "conflict.h5")
    refused(r, "row 2", "row 6", "two labels")
    assert not (root / "conflict.h5").exists()


def test_predict_on_hostile_inputs_writes_whole_files(corpus, pipeline):
    root, data, made = corpus
    _, model, _ = pipeline
    for fmt in ("--json", "--csv"):
        out = root / f"pred{fmt[2:]}.out"
        r = run("predict", model, data, fmt, out)
        assert r.code == 0, r
        text = out.read_text(encoding="utf-8")
        assert "not valid UTF-8" in text and "FIFO" in text and "wide.png" in text
        if fmt == "--json":
            import json

            doc = json.loads(text)  # standard JSON: no NaN
            assert all(
                abs(sum(p["probabilities"]) - 1) < 1e-3 or len(p["probabilities"]) == 1 for p in doc["predictions"]
            )
    r = run("predict", model, made["fifo"], made["not_utf8"], made["wide"], made["tall"])
    assert r.code == 0 and "2 predicted, 2 skipped" in r.out, r
    # nothing could be read: exit 1, and no half-written output left behind
    r = run("predict", model, made["fifo"], "--json", root / "none.json")
    refused(r, "no image could be read")
    assert not (root / "none.json.tmp").exists()


def test_export_and_compare_run_on_the_corpus(corpus, pipeline):
    root, data, _ = corpus
    _, model, _ = pipeline
    r = run("export", model, "-o", root / "m.onnx")
    assert r.code == 0 and (root / "m.onnx").stat().st_size > 0, r
    r = run("compare", data, "--models", "efficientnet_lite0", "--folds", "2", "-o", root / "cmp")
    assert r.code == 0 and "unreadable image(s) left out" in r.out, r


MODEL_CASES = [
    "not_json",
    "a_list",
    "deeply_nested",
    "no_backbone",
    "head_kind_changed",
    "two_names_three_classes",
    "huge_input_size",
    "format_version_99",
    "nan_constant_in_json",
    "params_wrong_type",
    "nan_coefficients",
    "inconsistent_width",
    "missing_array",
    "pickle",
    "empty",
    "truncated",
]


def test_tampered_model_files_are_refused_in_one_line(corpus, pipeline, tmp_path):
    _, data, _ = corpus
    features = pipeline[0]
    bad = tampered_models(pipeline[1], tmp_path)
    image = data / "cat" / "00.jpg"
    for case in MODEL_CASES:
        line = refused(cli("evaluate", bad[case], features), bad[case].name)
        if case == "pickle":
            assert "not a safetensors file" in line and "pickle" in line
        elif case not in ("empty", "truncated"):
            assert "not a valid transferkit model file" in line, line
        refused(cli("predict", bad[case], image), bad[case].name)
    refused(cli("predict", bad["unknown_head_kind"], image), "forest")
    # a consistent width that is not the backbone's: refused once the backbone is known
    refused(cli("predict", bad["consistent_wrong_width"], image), "999 features")
    refused(cli("evaluate", bad["consistent_wrong_width"], features), "999 features")
    refused(cli("export", bad["consistent_wrong_width"], "-o", tmp_path / "x.onnx"), "999 features")
    # in a child process: a FIFO must not block, a 4000 x 4000 input must not cost gigabytes
    refused(run("evaluate", bad["fifo"], features), "FIFO")
    refused(run("predict", bad["huge_input_size"], image), "input_size")


FEATURE_CASES = [
    "flip_3000",
    "flip_5000",
    "label_99",
    "label_minus_1",
    "split_7",
    "zeroed_block",
    "paths_not_utf8",
    "truncated",
    "empty",
]


def test_tampered_feature_files_fail_verify_and_never_crash(corpus, pipeline, tmp_path):
    features, model, _ = pipeline
    bad = tampered_features(features, tmp_path)
    for case in FEATURE_CASES:
        path = bad[case]
        refused(cli("inspect", path, "--verify"), path.name)
        cli("inspect", path)
        # train and evaluate check the data checksums too: damage HDF5 reads back silently is refused
        refused(cli("train", path, "-o", tmp_path / f"{case}.safetensors", "--cv", "2"), path.name)
        assert not (tmp_path / f"{case}.safetensors").exists()
        refused(cli("evaluate", model, path), path.name)
    refused(run("inspect", bad["fifo"], "--verify"), "FIFO")


def test_features_written_before_checksums_still_read(pipeline, tmp_path):
    import h5py

    old = tmp_path / "old.h5"
    old.write_bytes(pipeline[0].read_bytes())
    with h5py.File(old, "r+") as f:
        del f["checksums"]
    r = run("inspect", old, "--verify")
    assert r.code == 0 and "checksums: absent" in r.out, r
