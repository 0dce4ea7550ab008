"""``transferkit demo``: the whole flow, offline, on data that ships with the install.

1. The default backbone's weights are real: scikit-learn's sample photos get their ImageNet labels.
2. A natural-image run, end to end: crops of the photos that ship with scikit-learn and matplotlib
   become a 3-class dataset -> extract -> train -> evaluate -> predict on crops the model never saw.
3. The digits lesson (ImageNet features do not fit every dataset): handwritten digits 6 vs 8 (scikit-learn's
   bundled 8x8 digits, upscaled and written as grayscale PNGs) compared with ``compare``: 10-fold CV from raw pixels and
   from ImageNet features. Transfer can lose to raw pixels on data far from ImageNet: always compare.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.text import Text

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
            crop = Image.fromarray(
                np.clip(np.asarray(crop, np.float32) * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
            )
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
    from .cli._output import print_heading, print_table
    from .cli.predict import prediction_table
    from .progress import progress_bar

    console = console or Console(soft_wrap=True)
    out = Path(out)
    made: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"out": str(out.resolve())}

    # 1 ---------------------------------------------------------------------------------------
    print_heading(console, "1. what the pretrained network alone sees (its own ImageNet classifier)")
    from .imagenet import classify_imagenet

    made.append(photos_in := out / "imagenet-photos")
    photos_in.mkdir(exist_ok=True)
    for source, name in PHOTO_SOURCES.values():  # PNG: the pixels as shipped, not re-compressed
        sample_photo(source, name).save(photos_in / (Path(name).stem + ".png"))
    seen = classify_imagenet([photos_in], top_k=3)
    print_table(console, prediction_table([_relative(p, out) for p in seen.predictions], 3, "ImageNet class"))
    console.print(
        "  it knows ImageNet's 1,000 classes, not yours: a portrait has no ImageNet class. "
        "The same on your photos: transferkit predict --imagenet IMAGES...",
        highlight=False,
    )
    summary["imagenet_sanity"] = {
        Path(p.path).name: {"label": p.label, "p": round(p.confidence, 3)} for p in seen.predictions
    }

    # 2 ---------------------------------------------------------------------------------------
    print_heading(console, "2. natural images, end to end: extract -> train -> evaluate -> predict")
    photos, new = out / "photos", out / "photos-new"
    write_photo_crops(photos, per_class=40, seed=0)
    write_photo_crops(new, per_class=3, seed=1)
    made += [photos, new]
    console.print(
        Text(f"  dataset: {photos} (3 classes x 40 crops of the photos shipped with scikit-learn and matplotlib)")
    )
    with progress_bar("  extract", console) as update:
        ex = api.extract(photos, out / "photos.h5", overwrite=True, progress=update)
    made.append(ex.path)
    console.print(
        Text(f"  features: {ex.path} ({ex.n_rows} x {_feature_dim(ex.path)}, {ex.n_train} train / {ex.n_test} test)")
    )
    tr = api.train(ex.path, out / "photos.safetensors")
    made.append(tr.path)
    console.print(
        Text(f"  model: {tr.path} (logistic regression, C={tr.model.head.C_:g} by 3-fold CV, {tr.seconds:.1f} s)")
    )
    metrics = api.evaluate(tr.model, ex.path, html=out / "photos-report.html")
    (out / "photos-metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    made += [out / "photos-metrics.json", out / "photos-report.html"]
    console.print(
        Text(
            f"  test accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} -> "
            f"{out / 'photos-metrics.json'}, HTML report {out / 'photos-report.html'}"
        )
    )
    pred = api.predict(tr.model, [new], top_k=1)
    right = sum(Path(p.path).parent.name == p.label for p in pred.predictions)
    console.print(Text(f"  predict on {len(pred.predictions)} new crops in {new}: {right} correct"))
    print_table(console, prediction_table([_relative(p, out) for p in pred.predictions[::3]], 1))
    summary["photos"] = {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "predict_correct": right,
        "predict_total": len(pred.predictions),
    }

    # 3 ---------------------------------------------------------------------------------------
    print_heading(console, "3. the digits lesson: 6 vs 8, raw pixels vs ImageNet features, 10-fold CV")
    digits = out / "digits"
    write_digits(digits)
    from .comparison.outputs import table

    cmp = api.compare(
        digits,
        ["efficientnet_lite0"],
        baseline="pixels:8",
        folds=10,
        out=out / "digits-compare",
        progress=lambda d: progress_bar(f"  {d}", console, unit="fold" if d.startswith("CV ") else "img"),
    )
    made += [digits, out / "digits-compare"]
    print_table(console, table(cmp))
    raw, feat = cmp["raw pixels 8x8"], cmp["efficientnet_lite0"]
    verdict = "raw pixels win" if raw.accuracy_mean > feat.accuracy_mean else "ImageNet features win"
    p_value = raw.p_vs_best if raw.p_vs_best is not None else feat.p_vs_best
    verdict += f" (by {abs(raw.accuracy_mean - feat.accuracy_mean):.3f}, corrected paired t-test p={p_value:.2f})"
    console.print(
        f"  {cmp.n_images} images; {verdict}. ImageNet features do not fit every dataset: compare before you trust "
        "them."
    )
    console.print(
        Text(
            f"  the same on your data: transferkit compare DATA --models efficientnet_lite0,efficientnet_lite1 "
            f"(report: {cmp.csv_path}, {cmp.png_path})"
        )
    )
    summary["digits"] = {
        "n": cmp.n_images,
        "raw_pixels": raw.accuracy_mean,
        "imagenet_features": feat.accuracy_mean,
        "logme_raw_pixels": raw.logme,
        "logme_imagenet_features": feat.logme,
        "p_value": raw.p_vs_best if raw.p_vs_best is not None else feat.p_vs_best,
    }

    (out / "demo-summary.json").write_text(json.dumps(summary, indent=2))
    made.append(out / "demo-summary.json")
    print_heading(console, f"files written under {out}")
    for path in made:
        console.print(Text(f"  {_describe(path, out)}"))
    console.print(
        Text(
            f"next: transferkit inspect {out / 'photos.h5'}  (or open {out / 'photos-report.html'} in a browser), "
            "then run the same commands on your own folder."
        )
    )
    return summary


def _feature_dim(features: Path) -> int:
    from .store import open_features

    with open_features(features) as ff:
        return ff.feature_dim


def _relative(p, root: Path):
    """A prediction whose path reads relative to ``root`` (the demo's folder), for shorter tables."""
    from .prediction import Prediction

    return Prediction(path=os.path.relpath(p.path, root), labels=p.labels, probabilities=p.probabilities)


def _describe(path: Path, root: Path) -> str:
    name = os.path.relpath(path, root)
    if not path.is_dir():
        return f"{name} ({path.stat().st_size / 1e3:,.0f} kB)"
    files = sorted(f.relative_to(path).as_posix() for f in path.rglob("*") if f.is_file())
    if len(files) <= 6:
        return f"{name}/: {', '.join(files)}"
    folders = sorted({Path(f).parent.as_posix() for f in files} - {"."})
    where = f" in {len(folders)} class folders ({', '.join(folders)})" if folders else ""
    return f"{name}/: {len(files)} images{where}"
