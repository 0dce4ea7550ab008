"""The HTML evaluation report: a real extraction with known mistakes, checked as HTML and as rendered
by a real headless Chromium (Debian's `chromium`; the test fails, not skips, without it)."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import ARTIFACTS, run_cli
from mislabeled import make_mislabeled

import transferkit as tk
from transferkit.evaluate.metrics import classification_metrics
from transferkit.evaluate.report import (
    ReportData,
    misclassified,
    normalise_history,
    placeholder,
    render_html,
    write_report,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Extract + train on a dataset whose test split holds three deliberately mislabeled images."""
    base = tmp_path_factory.mktemp("report")
    ds = make_mislabeled(base / "my data")
    features = tk.extract(ds.manifest, base / "features.h5", batch_size=16).path
    result = tk.train(features, base / "model.safetensors", cv=3)
    return ds, features, result.path, base


class Cards(HTMLParser):
    """Collects the misclassified cards (their data-* attributes and image src) and every URL."""

    def __init__(self):
        super().__init__()
        self.cards, self.urls, self.cells = [], [], 0
        self._in_card = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and "card" in (a.get("class") or "").split():
            self.cards.append(dict(a))
        if tag == "img" and self.cards and "img_src" not in self.cards[-1]:
            self.cards[-1]["img_src"] = a.get("src", "")
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(a[key])
        if tag == "td" and "data-count" in a:
            self.cells += 1


def parse(path: Path) -> Cards:
    p = Cards()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_report_lists_exactly_the_known_mistakes(run, tmp_path):
    ds, features, model, _ = run
    out = tmp_path / "report.html"
    m = tk.evaluate(model, features, html=out)
    assert m["html"] == str(out) and out.exists()
    assert m["n_test"] == 12 and m["accuracy"] == pytest.approx(9 / 12)
    page = parse(out)
    found = {c["data-path"]: (c["data-true"], c["data-predicted"]) for c in page.cards}
    assert found == ds.errors  # each mislabeled test image, with the label its picture shows as prediction
    conf = [float(c["data-confidence"]) for c in page.cards]
    assert conf == sorted(conf, reverse=True)
    assert all(c["img_src"].startswith("data:image/jpeg;base64,") for c in page.cards)
    # self-contained: nothing but inline data and in-page anchors
    assert all(u.startswith(("data:", "#")) for u in page.urls), [
        u for u in page.urls if not u.startswith(("data:", "#"))
    ]
    text = out.read_text(encoding="utf-8")
    for path, why in ds.bad.items():
        assert path in text and why in text.lower()
    assert "efficientnet_lite0" in text and "pre_logits" in text and "logreg" in text
    assert "36 train, 12 test" in text and "4 skipped" in text
    assert f"{m['macro_f1']:.4f}" in text
    assert 'id="search"' in text  # the CV curve of the logistic head's C
    assert 'id="training"' not in text  # logistic regression records no epochs
    # what mattered for this in-memory fit is in the open; solver internals sit in a collapsed <details>
    head_table = text[text.index('id="hyperparameters"') :]
    head_table = head_table[: head_table.index("</table>\n  </div>")]
    shown, folded = head_table.split('id="solver-settings"')
    assert 'data-key="Cs"' in shown and 'data-key="cv"' in shown and 'data-key="C"' in shown
    assert all(
        f'data-key="{k}"' in folded and f'data-key="{k}"' not in shown
        for k in ("max_iter", "tol", "batch_size", "max_epochs", "polish_iter")
    )


def test_moved_and_missing_images_get_placeholders(run, tmp_path):
    ds, features, model, _ = run
    moved = tmp_path / "moved"
    shutil.copytree(ds.root, moved)
    gone = sorted(ds.errors)[0]
    (moved / gone).unlink()
    out = write_report(tmp_path / "moved.html", model, features, images_root=moved)
    cards = {c["data-path"]: c["img_src"] for c in parse(out).cards}
    assert cards[gone].startswith("data:image/svg+xml")
    assert all(src.startswith("data:image/jpeg") for p, src in cards.items() if p != gone)
    text = out.read_text(encoding="utf-8")
    assert "1 of 3 misclassified images could not be read" in text and "file not found" in text

    # a root that does not exist at all: every thumbnail is a placeholder, and the page says how to fix it
    out = write_report(tmp_path / "nowhere.html", model, features, images_root=tmp_path / "nowhere")
    assert all(c["img_src"].startswith("data:image/svg+xml") for c in parse(out).cards)


def test_curves_appear_when_the_model_has_a_history(run, tmp_path):
    _, features, model_path, _ = run
    model = tk.load_model(model_path)
    model.training["history"] = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 1.2 / e,
            "train_accuracy": 1 - 0.5 / e,
            "val_accuracy": 1 - 0.6 / e,
        }
        for e in range(1, 11)
    ]
    text = write_report(tmp_path / "h.html", model, features).read_text(encoding="utf-8")
    assert 'id="training"' in text and re.search(r'<section id="training".*?src="data:image/png;base64,', text, re.S)


def test_history_shapes_are_normalised():
    flat = {"train_loss": [3, 2, 1], "val_loss": [3.5, 2.5, 2], "train_accuracy": [0.5, 0.7, 0.9], "best_epoch": 3}
    h = normalise_history(flat)
    assert (
        h["epoch"] == [1, 2, 3]
        and h["best_epoch"] == 3
        and set(h["series"]) == {"train_loss", "val_loss", "train_accuracy"}
    )
    nested = normalise_history({"train": {"loss": [1, 0.5]}, "val": {"loss": [1.1, 0.7], "accuracy": [0.4, 0.6]}})
    assert set(nested["series"]) == {"train_loss", "val_loss", "val_accuracy"}
    rows = normalise_history([{"epoch": 5, "loss": 1.0}, {"epoch": 6, "loss": 0.5}])
    assert rows["epoch"] == [5, 6] and rows["series"] == {"loss": [1.0, 0.5]}
    assert (
        normalise_history(None) is None and normalise_history({}) is None and normalise_history({"note": "x"}) is None
    )


def synthetic_101(errors_to_keep: int = 24) -> ReportData:
    rng = np.random.default_rng(0)
    names = [f"class {i:03d}" + (" with a rather long descriptive name" if i % 7 == 0 else "") for i in range(101)]
    y = np.repeat(np.arange(101), 6)
    logits = rng.normal(size=(len(y), 101))
    logits[np.arange(len(y)), y] += 3.0
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    errors = misclassified([f"{names[c]}/{i}.jpg" for i, c in enumerate(y)], y, proba, names)[:errors_to_keep]
    for e in errors:
        e.image, e.image_found, e.image_problem = placeholder("image not found"), False, "file not found"
    history = normalise_history(
        {
            "train_loss": [1, 0.6, 0.4, 0.3],
            "val_loss": [1.1, 0.8, 0.7, 0.72],
            "train_accuracy": [0.5, 0.7, 0.8, 0.9],
            "val_accuracy": [0.45, 0.6, 0.7, 0.69],
        }
    )
    return ReportData(
        title="synthetic, 101 classes",
        metrics=classification_metrics(y, proba, names),
        errors=errors,
        history=history,
        summary=[("dataset", "synthetic")],
    )


def test_confusion_matrix_with_101_classes_is_a_compact_table():
    data = synthetic_101()
    text = render_html(data)
    cm = np.asarray(data.metrics["confusion_matrix"])
    page = Cards()
    page.feed(text)
    assert page.cells == int((cm > 0).sum())  # one titled cell per non-zero count
    assert text.count('<th class="row"') == 101 and text.count('<th class="col"') == 101
    assert 'data-metric="top-5 accuracy"' in text
    assert len(text) < 1_500_000


def test_user_text_is_escaped_and_a_perfect_run_says_so():
    names = ['<b>bold</b> & "quoted"', "plain"]
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    data = ReportData(
        title="<script>alert(1)</script>",
        metrics=classification_metrics(y, proba, names),
        skipped=[("<img src=x>.jpg", "not an image")],
    )
    text = render_html(data)
    assert "<script>alert(1)" not in text and "<b>bold" not in text and "<img src=x>" not in text
    assert (
        "&lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34;" in text
        or "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;" in text
    )
    assert "every test image was classified correctly" in text


# -- in a real browser ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium():
    from browser import INSTALL_HINT, BrowserError, Chromium, find_chromium

    if find_chromium() is None:
        pytest.fail(f"the HTML report test needs a headless Chromium and none was found; {INSTALL_HINT}", pytrace=False)
    try:
        with Chromium() as browser:
            yield browser
    except BrowserError as exc:
        pytest.fail(f"could not start Chromium: {exc}", pytrace=False)


IMAGES_JS = """(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return imgs.map(i => ({src: i.src.slice(0, 22), w: i.naturalWidth, shown: i.getBoundingClientRect().width}));
})()"""


@pytest.mark.slow
def test_report_renders_in_headless_chromium(run, tmp_path, chromium):
    ds, features, model, _ = run
    out = tmp_path / "report.html"
    m = tk.evaluate(model, features, html=out)
    page = chromium.open(out)

    metric = "document.querySelector('[data-metric=\"{}\"] .v').textContent.trim()"
    assert page.evaluate(metric.format("accuracy")) == f"{m['accuracy']:.4f}" == "0.7500"
    assert page.evaluate(metric.format("macro-F1")) == f"{m['macro_f1']:.4f}"
    assert page.evaluate(metric.format("errors")).replace(" ", "") == "3/12"
    rows = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#summary-table tr')]"
        ".map(r => [r.dataset.key, r.querySelector('td').textContent]))"
    )
    assert (
        rows["backbone"].startswith("efficientnet_lite0") and rows["layer"] == "pre_logits" and rows["head"] == "logreg"
    )
    assert "36 train, 12 test" in rows["images"] and "4 skipped" in rows["images"]

    cards = page.evaluate(
        "[...document.querySelectorAll('#error-grid .card')].map(c => "
        "({path: c.dataset.path, t: c.querySelector('.true').textContent, p: c.querySelector('.pred').textContent}))"
    )
    assert len(cards) == 3 == m["n_test"] - int(np.trace(m["confusion_matrix"]))
    assert {c["path"]: (c["t"], c["p"]) for c in cards} == ds.errors

    images = page.evaluate(IMAGES_JS)
    # three thumbnails, their 3 x 3 nearest training images, the C-search, reliability and feature-map plots
    assert len(images) == 3 + 9 + 3
    assert all(i["w"] > 0 and i["shown"] > 0 for i in images), images
    per_class = page.evaluate("document.querySelectorAll('#per-class-table tbody tr').length")
    skipped = page.evaluate("[...document.querySelectorAll('#skipped li')].map(li => li.textContent)")
    assert per_class == 3 and len(skipped) == 4 and any("decompression bomb" in s for s in skipped)

    shot = page.screenshot(ARTIFACTS / "report.png")
    assert shot.stat().st_size > 10_000

    # the page's small scripts work: sorting the per-class table and filtering the thumbnails
    page.evaluate("document.querySelectorAll('#per-class-table th')[0].click()")
    order = page.evaluate("[...document.querySelectorAll('#per-class-table tbody tr')].map(r => r.dataset.class)")
    assert order == sorted(order, reverse=True)
    page.evaluate(
        "(() => { const i = document.getElementById('error-filter'); i.value = 'grün stripes/';"
        " i.dispatchEvent(new Event('input')); })()"
    )
    assert page.evaluate("document.getElementById('error-shown').textContent") == "1 shown"

    assert page.console_errors() == []
    assert all(u.startswith(("file:", "data:")) for u in page.requested_urls())


@pytest.mark.slow
def test_101_class_report_renders(tmp_path, chromium):
    out = tmp_path / "report-101.html"
    out.write_text(render_html(synthetic_101()), encoding="utf-8")
    page = chromium.open(out)
    images = page.evaluate(IMAGES_JS)
    assert len(images) == 24 + 1 and all(i["w"] > 0 for i in images)  # placeholders and the training curves
    box = page.evaluate(
        "(() => { const t = document.querySelector('table.cm').getBoundingClientRect();"
        " const c = document.querySelector('table.cm td').getBoundingClientRect();"
        " return {w: t.width, cell: c.width}; })()"
    )
    assert box["cell"] >= 13 and box["w"] < 101 * 20 + 400  # legible cells, yet the whole matrix in ~2 screens
    assert page.console_errors() == []
    page.screenshot(ARTIFACTS / "report-101-classes.png")


@pytest.mark.slow
def test_cli_evaluate_html(run, tmp_path):
    ds, features, model, _ = run
    out = tmp_path / "cli.html"
    proc = run_cli("evaluate", model, features, "--html", out, "--images-root", ds.root, check=True)
    assert out.exists() and "3 misclassified images" in proc.stdout
    proc = run_cli("evaluate", model, features, "--images-root", ds.root)
    assert proc.returncode != 0 and "--html" in proc.stderr
