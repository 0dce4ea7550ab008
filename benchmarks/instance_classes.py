"""A 100-class photo set from flowers17, for real pooled features with many classes.

    python benchmarks/instance_classes.py OUT_DIR [--data ../shared/datasets/flowers17] [--classes 100]
    PYTHONPATH=$PWD/src python -m transferkit extract OUT_DIR -o inst100.h5

Each class is one flowers17 photo (100 drawn at random) and holds 87 views of it: a random crop of
12-60 % of its area (aspect 3:4 to 4:3) resized to 256 px, a random flip, brightness and colour
jitter, a rotation of up to 20 degrees. 8,700 JPEGs; ``transferkit extract`` then makes 6,500 train
/ 2,200 test rows of real EfficientNet-Lite0 pooled features with 100 classes (the classic recipe
scores about 0.99 on them), the closest offline stand-in for a 101-class photo set.

A harder variant, whose classes look alike (photos of the same few species) and whose views share
less of the photo: ``--species 6 --area 0.04 0.25``.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageEnhance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    here = Path(__file__).resolve()
    found = [p / "shared/datasets/flowers17" for p in here.parents if (p / "shared/datasets/flowers17").is_dir()]
    ap.add_argument("--data", default=str(found[0]) if found else None, required=not found,
                    help="the flowers17 folder (default: shared/datasets/flowers17 in a folder above this clone)")
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--views", type=int, default=87)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--area", type=float, nargs=2, default=(0.12, 0.6), metavar=("MIN", "MAX"),
                    help="the crops' share of the photo's area (default 0.12 0.6)")
    ap.add_argument("--species", type=int, default=None,
                    help="draw the photos from this many flowers17 folders only: classes that look alike, "
                         "a harder set (default: from all)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    folders = sorted(p for p in Path(args.data).iterdir() if p.is_dir())
    if args.species:
        folders = rng.sample(folders, args.species)
    files = sorted(f for d in folders for f in d.rglob("*.jpg"))
    for ci, f in enumerate(rng.sample(files, args.classes)):
        folder = Path(args.out) / f"c{ci:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        im = Image.open(f).convert("RGB")
        W, H = im.size
        for j in range(args.views):
            area, aspect = rng.uniform(*args.area), rng.uniform(0.75, 1.33)
            w = int(min(W, (area * W * H * aspect) ** 0.5))
            h = int(min(H, (area * W * H / aspect) ** 0.5))
            x, y = rng.randint(0, W - w), rng.randint(0, H - h)
            view = im.crop((x, y, x + w, y + h)).resize((256, 256), Image.BILINEAR)
            if rng.random() < 0.5:
                view = view.transpose(Image.FLIP_LEFT_RIGHT)
            view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.7, 1.3))
            view = ImageEnhance.Color(view).enhance(rng.uniform(0.6, 1.4))
            view.rotate(rng.uniform(-20, 20)).save(folder / f"{j}.jpg", quality=85)


if __name__ == "__main__":
    main()
