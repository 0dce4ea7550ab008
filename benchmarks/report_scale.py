"""How the HTML report scales: N misclassified real photos and C classes -> write time and file size.

Thumbnails are made from real JPEGs (default: the flowers17 photos, reused round-robin), the metrics
are those of a synthetic C-class problem. Prints seconds spent on thumbnails and on rendering, and
the size of the HTML file per misclassified image.

    PYTHONPATH=src python benchmarks/report_scale.py [--errors 1000] [--classes 101] [--images DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--errors", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=101)
    ap.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[3] / "shared/datasets/flowers17")
    args = ap.parse_args()

    from transferkit.data import list_images
    from transferkit.evaluate.metrics import classification_metrics
    from transferkit.evaluate.report import ReportData, fill_thumbnails, misclassified, render_html

    photos = list_images(args.images)
    if not photos:
        raise SystemExit(f"no images under {args.images}")
    rng = np.random.default_rng(0)
    k = args.classes
    n = max(args.errors * 3, k * 4)
    y = np.arange(n) % k
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.2
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    names = [f"class {i:03d}" for i in range(k)]
    paths = [str(photos[i % len(photos)].relative_to(args.images)) for i in range(n)]
    errors = misclassified(paths, y, proba, names)[: args.errors]

    t0 = time.perf_counter()
    fill_thumbnails(errors, args.images)
    t1 = time.perf_counter()
    html = render_html(ReportData(title="scale", metrics=classification_metrics(y, proba, names), errors=errors))
    t2 = time.perf_counter()
    out = Path(tempfile.mkdtemp()) / "report.html"
    out.write_text(html, encoding="utf-8")
    size = out.stat().st_size
    print(f"{len(errors)} misclassified photos from {args.images.name}, {k} classes ({n} test rows)")
    print(f"thumbnails: {t1 - t0:.1f} s ({len(errors) / (t1 - t0):.0f} images/s); render: {t2 - t1:.2f} s; "
          f"file: {size / 1e6:.1f} MB ({size / max(1, len(errors)) / 1e3:.1f} kB per misclassified image)")


if __name__ == "__main__":
    main()
