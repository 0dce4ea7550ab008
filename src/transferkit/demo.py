"""``transferkit demo``: the whole flow, offline, on data that ships with the install.

1. The default backbone's weights are real: scikit-learn's sample photos get their ImageNet labels.
2. A natural-image run, end to end: crops of the photos that ship with scikit-learn and matplotlib
   become a 3-class dataset -> extract -> train -> evaluate -> predict on crops the model never saw.
3. The seeds' cautionary experiment: handwritten digits 6 vs 8 (scikit-learn's bundled 8x8 digits,
   upscaled and written as grayscale PNGs) compared with ``compare``: 10-fold CV from raw pixels and
   from ImageNet features. Transfer can lose to raw pixels on data far from ImageNet: always compare.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.markup import escape

PHOTO_SOURCES = {
    "palace": ("sklearn", "china.jpg"),
    "daisy": ("sklearn", "flower.jpg"),
    "portrait": ("matplotlib", "grace_hopper.jpg"),
}


def sample_photo(source: str, name: str) -> Image.Image:
    if source == "sklearn":
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(name))
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data(name, asfileobj=True) as fh:
        return Image.open(fh).convert("RGB")


def write_photo_crops(root: Path, per_class: int, seed: int) -> None:
    """Random crops (40-90% of the shorter side), flips and brightness changes of each photo."""
    rng = np.random.default_rng(seed)
    for label, (source, name) in PHOTO_SOURCES.items():
        photo = sample_photo(source, name)
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        w, h = photo.size
        for i in range(per_class):
            side = int(min(w, h) * rng.uniform(0.4, 0.9))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crop = photo.crop((x, y, x + side, y + side)).resize((160, 160), Image.Resampling.BICUBIC)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crop = Image.fromarray(np.clip(np.asarray(crop, np.float32) * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8))
            crop.save(folder / f"{label} {i:03d}.jpg", quality=90)


def write_digits(root: Path, digits=(6, 8), size: int = 32) -> None:
    """Write scikit-learn's 8x8 digits of ``digits`` as grayscale PNGs, one folder per digit."""
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, digits)
    for label in digits:
        (root / str(label)).mkdir(parents=True, exist_ok=True)
    counters = dict.fromkeys(digits, 0)
    for pixels, label in zip(d.data[keep], d.target[keep]):
        img = Image.fromarray((pixels.reshape(8, 8) * (255 / 16)).astype(np.uint8), mode="L")
        img.resize((size, size), Image.Resampling.NEAREST).save(root / str(label) / f"{counters[label]:04d}.png")
        counters[label] += 1


def run_demo(out: Path, console: Console | None = None) -> dict:
    from . import api
    from .backbones import create_backbone
    from .progress import progress_bar

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"out": str(out.resolve())}

    # 1 ---------------------------------------------------------------------------------------
    console.rule("[bold]1. the offline default backbone (EfficientNet-Lite0, ImageNet weights)")
    from timm.data import ImageNetInfo

    backbone = create_backbone()
    info = ImageNetInfo()
    sanity = {}
    for name in ("china.jpg", "flower.jpg"):
        x = backbone.preprocess.to_array(sample_photo("sklearn", name))[None]
        p = backbone.classify(x)[0]
        top = int(p.argmax())
        sanity[name] = {"class": top, "label": info.index_to_description(top), "p": round(float(p[top]), 3)}
        console.print(f"  {name:11s} -> ImageNet {top} ({sanity[name]['label']}, p={p[top]:.2f})")
    summary["imagenet_sanity"] = sanity

    # 2 ---------------------------------------------------------------------------------------
    console.rule("[bold]2. natural images, end to end: extract -> train -> evaluate -> predict")
    photos, new = out / "photos", out / "photos-new"
    write_photo_crops(photos, per_class=40, seed=0)
    write_photo_crops(new, per_class=3, seed=1)
    console.print(f"  dataset: {escape(str(photos))} (3 classes x 40 crops of the photos shipped with scikit-learn and matplotlib)")
    with progress_bar("  extract", console) as update:
        ex = api.extract(photos, out / "photos.h5", overwrite=True, progress=update)
    console.print(f"  features: {escape(str(ex.path))} ({ex.n_rows} x {backbone.feature_dim}, {ex.n_train} train / {ex.n_test} test)")
    tr = api.train(ex.path, out / "photos.safetensors")
    console.print(f"  model: {escape(str(tr.path))} (logistic regression, C={tr.model.head.C_:g} by 3-fold CV, {tr.seconds:.1f} s)")
    metrics = api.evaluate(tr.model, ex.path)
    (out / "photos-metrics.json").write_text(json.dumps(metrics, indent=2))
    console.print(f"  test accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} -> {escape(str(out / 'photos-metrics.json'))}")
    pred = api.predict(tr.model, [new], top_k=1)
    right = sum(Path(p.path).parent.name == p.label for p in pred.predictions)
    console.print(f"  predict on {len(pred.predictions)} new crops in {escape(str(new))}: {right} correct")
    for p in pred.predictions[:3]:
        console.print(f"    {escape(str(Path(p.path).relative_to(out)))} -> {p.label} ({p.confidence:.2f})", highlight=False)
    summary["photos"] = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "predict_correct": right,
                         "predict_total": len(pred.predictions)}

    # 3 ---------------------------------------------------------------------------------------
    console.rule("[bold]3. the seeds' lesson: digits 6 vs 8, raw pixels vs ImageNet features (10-fold CV)")
    digits = out / "digits"
    write_digits(digits)
    from .comparison.report import print_table

    cmp = api.compare(digits, ["efficientnet_lite0"], baseline="pixels:8", folds=10, out=out / "digits-compare",
                      progress=lambda d: progress_bar(f"  {d}", console))
    print_table(console, cmp)
    raw, feat = cmp["raw pixels 8x8"], cmp["efficientnet_lite0"]
    verdict = "raw pixels win" if raw.accuracy_mean > feat.accuracy_mean else "ImageNet features win"
    console.print(f"  {cmp.n_images} images; {verdict}. ImageNet features do not fit every dataset: compare before you trust them.")
    console.print(f"  the same on your data: transferkit compare DATA --models efficientnet_lite0,efficientnet_lite1 "
                  f"(report: {cmp.csv_path}, {cmp.png_path})", highlight=False)
    summary["digits"] = {"n": cmp.n_images, "raw_pixels": raw.accuracy_mean, "imagenet_features": feat.accuracy_mean,
                         "logme_raw_pixels": raw.logme, "logme_imagenet_features": feat.logme,
                         "p_value": raw.p_vs_best if raw.p_vs_best is not None else feat.p_vs_best}

    console.rule("[bold]files")
    for path in (photos, out / "photos.h5", out / "photos.safetensors", out / "photos-metrics.json", digits, out / "digits-compare"):
        console.print(f"  {escape(str(path))}")
    console.print("next: `transferkit inspect " + escape(str(out / "photos.h5")) + "`, or run the same commands on your own folder.")
    (out / "demo-summary.json").write_text(json.dumps(summary, indent=2))
    return summary
