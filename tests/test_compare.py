"""compare(): raw pixels vs two offline backbones on generated images, paired folds, saved report,
and reuse of feature files (proved by file modification times, not by mocking)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from conftest import make_dataset, run_cli

import transferkit as tk
from transferkit.cli._flags import worded
from transferkit.comparison.cv import corrected_paired_ttest
from transferkit.errors import TransferkitError

FOLDS = 3


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cmp") / "shapes", per_class=8, seed=11, nested=False)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, images):
    out = tmp_path_factory.mktemp("cmp-out")
    result = tk.compare(images, ["efficientnet_lite0", "efficientnet_lite1"], baseline="pixels:16",
                        folds=FOLDS, out=out, batch_size=8)
    return out, result


def mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.h5"))}


def test_compare_pixels_and_two_backbones(first_run):
    out, result = first_run
    names = [r.name for r in result.rows]
    assert sorted(names) == ["efficientnet_lite0", "efficientnet_lite1", "raw pixels 16x16"]
    assert result.n_images == 24 and result.folds == FOLDS and result.class_names == sorted(result.class_names)
    for r in result.rows:
        assert r.ok, r.error
        assert len(r.accuracy) == FOLDS and len(r.macro_f1) == FOLDS
        assert np.isfinite(r.logme) and np.isfinite(r.hscore)
        assert r.reused is False
        assert r.extract_seconds > 0 and r.train_seconds > 0
    assert result["raw pixels 16x16"].dims == 3 * 16 * 16
    assert result["efficientnet_lite0"].dims == 1280
    # ordered by LogME, best first
    logmes = [r.logme for r in result.rows]
    assert logmes == sorted(logmes, reverse=True)
    # three visually distinct shapes: the ImageNet features separate them
    assert result["efficientnet_lite0"].accuracy_mean >= 0.8
    best = result.best
    assert best.delta_vs_best is None and all(r.delta_vs_best is not None for r in result.rows if r is not best)
    # one feature file per backbone, named from the candidate spec, with the candidate's provenance
    files = sorted((out / "features").glob("*.h5"))
    assert [f.name.split("__")[0] for f in files] == ["efficientnet_lite0", "efficientnet_lite1"]
    for r in result.rows:
        if r.candidate.is_pixels:
            continue
        with tk.open_features(r.feature_file) as ff:
            assert ff.attrs["model"] == r.candidate.model and ff.complete and ff.n_rows == 24


def test_report_files(first_run):
    out, result = first_run
    with open(out / "compare.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["candidate"] for r in rows] == [r.name for r in result.rows]
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]
    for row, r in zip(rows, result.rows):
        assert float(row["accuracy_mean"]) == pytest.approx(r.accuracy_mean, abs=1e-4)
        assert float(row["logme"]) == pytest.approx(r.logme, abs=1e-4)
    doc = json.loads((out / "compare.json").read_text())
    assert doc["folds"] == FOLDS and len(doc["candidates"]) == 3
    assert all(len(c["fold_accuracy"]) == FOLDS for c in doc["candidates"])
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_run_reuses_feature_files(first_run, images):
    out, first = first_run
    before = mtimes(out / "features")
    again = tk.compare(images, ["efficientnet_lite0", "efficientnet_lite1"], baseline="pixels:16", folds=FOLDS, out=out)
    assert mtimes(out / "features") == before  # nothing rewritten
    for r in again.rows:
        if not r.candidate.is_pixels:
            assert r.reused and r.extract_seconds == 0.0
        # same features, same folds: the same scores
        assert np.array_equal(r.accuracy, first[r.name].accuracy)
        assert r.logme == pytest.approx(first[r.name].logme, rel=1e-9)


def test_reuses_a_matching_extraction_for_a_sample(first_run, images, tmp_path):
    """A feature file made by `extract` on the whole dataset serves a --sample run of the same model;
    a file of another model is not taken for it."""
    out, _ = first_run
    lite0 = next((out / "features").glob("efficientnet_lite0__*.h5"))
    full = tmp_path / "extracted.h5"
    tk.extract(images, full, batch_size=8)
    result = tk.compare(images, ["efficientnet_lite0"], baseline="none", folds=FOLDS, sample=15,
                        reuse=[full], cache_dir=tmp_path / "cache", out=tmp_path / "out")
    (r,) = result.rows
    assert r.reused and r.feature_file == full and result.n_images == 15
    assert not list((tmp_path / "cache").glob("*.h5"))
    # the wrong model is never reused: lite1 with only a lite0 file on offer is extracted afresh
    lite1 = tk.compare(images, ["efficientnet_lite1"], baseline="none", folds=FOLDS, sample=15, reuse=[lite0, full],
                       cache_dir=tmp_path / "cache")
    assert not lite1.rows[0].reused and lite1.rows[0].feature_file.parent == tmp_path / "cache"


def test_images_changed_after_extraction_are_extracted_again(first_run, images, tmp_path):
    out, _ = first_run
    cache = tmp_path / "cache"
    cache.mkdir()
    src = next((out / "features").glob("efficientnet_lite0__*.h5"))
    copy = cache / src.name
    copy.write_bytes(src.read_bytes())
    one = next(images.rglob("*.jpg"))
    stat = one.stat()
    try:
        os.utime(one, (stat.st_atime, copy.stat().st_mtime + 10))  # the image is newer than its features
        r = tk.compare(images, ["efficientnet_lite0"], baseline="none", folds=FOLDS, cache_dir=cache).rows[0]
    finally:
        os.utime(one, (stat.st_atime, stat.st_mtime))
    assert not r.reused and r.extract_seconds > 0


def test_errors_before_any_work(images, tmp_path):
    with pytest.raises(TransferkitError, match="fewer than the 10 folds"):
        tk.compare(images, ["efficientnet_lite0"], folds=10, out=tmp_path)
    with pytest.raises(TransferkitError, match="smaller than the number of classes"):
        tk.compare(images, ["efficientnet_lite0"], sample=2, folds=2, out=tmp_path)
    with pytest.raises(TransferkitError, match="^baseline 'hog': the only baseline is 'pixels'") as e:
        tk.compare(images, ["efficientnet_lite0"], baseline="hog", out=tmp_path)
    assert worded(e.value).startswith("--baseline 'hog': the only baseline")  # as the command line says it
    with pytest.raises(TransferkitError, match="not a model; use baseline='pixels'$") as e:
        tk.compare(images, ["pixels"], out=tmp_path)
    assert worded(e.value).endswith("not a model; use --baseline pixels")
    assert not list(tmp_path.rglob("*.h5"))


def test_corrected_paired_ttest():
    same = np.array([0.9, 0.8, 0.95])
    assert corrected_paired_ttest(same, same, 80, 20) == (0.0, 1.0)
    a, b = np.array([0.90, 0.92, 0.88, 0.91]), np.array([0.80, 0.83, 0.79, 0.80])
    mean, p = corrected_paired_ttest(a, b, n_train=75, n_test=25)
    d = a - b
    t = d.mean() / np.sqrt((1 / 4 + 25 / 75) * d.var(ddof=1))
    from scipy import stats

    assert mean == pytest.approx(d.mean()) and p == pytest.approx(2 * stats.t.sf(t, 3))
    assert p < 0.01
    # the correction makes it more conservative than a plain paired t-test
    assert p > stats.ttest_rel(a, b).pvalue


@pytest.mark.slow
def test_cli_compare_reports_failed_candidates(first_run, images, tmp_path):
    out, _ = first_run
    proc = run_cli("compare", images, "--models", "efficientnet_lite0", "--layers", "default,no_such_layer",
                   "--baseline", "pixels:16", "--folds", str(FOLDS), "--cache-dir", out / "features", "-o", tmp_path)
    text = proc.stdout + proc.stderr
    assert "raw pixels 16x16" in text and "efficientnet_lite0" in text and "reused" in text
    assert "LogME" in text and "best" in text
    # the default layer is scored; a layer this installation cannot extract fails alone, loudly
    assert "error:" in text and "no_such_layer" in text and proc.returncode == 1
    rows = list(csv.DictReader(open(tmp_path / "compare.csv", newline="")))
    assert [bool(r["error"]) for r in rows].count(True) == 1
    assert (tmp_path / "compare.png").exists()

