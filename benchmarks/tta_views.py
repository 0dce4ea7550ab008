"""Which test-time views help: the accuracy of logistic regression on features averaged over several views
of each picture, for the pretrained Lite0 or a fine-tuned model file's network, on train/ + valid/ layouts.

Views (shorter side resized to 256 px, then 224 x 224 crops, each also mirrored): the centre crop (the
plain pipeline), the four corners of the resized picture (torchvision's TenCrop: on an oblong picture
they reach the ends of the longer side), and the four corners of the centre 256 x 256 square (what a
graph with a fixed square input could crop). The features of every picture under every view are
computed once, then each layout (``benchmarks/finetune_flowers.py`` makes them: symbolic links into one
photo set) is scored for each combination: errors on its test photos of the product's head (C and
scaling by cross-validation) and of a fixed head (sqrt-l2 scaling at C = 10, 100, 1000) that removes the
CV's choice from the comparison. For analysis: ``finetune --tta`` is chosen from these figures.

    PYTHONPATH=src python benchmarks/tta_views.py /tmp/i17/b0 /tmp/i17/b1 /tmp/i17/b2 \\
        [--model tuned.safetensors] [--cache /tmp/tta-views.npz]
"""

from __future__ import annotations

import argparse
import glob
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

CROP, SHORT = 224, 256
VIEWS = ("c", "tl", "tr", "bl", "br", "stl", "str", "sbl", "sbr")
COMBOS = {
    "centre": ["c"],
    "hflip": ["c", "c_f"],
    "five crops": ["c", "tl", "tr", "bl", "br"],
    "ten-crop": [v + m for v in ("c", "tl", "tr", "bl", "br") for m in ("", "_f")],
    "ten-crop, square": [v + m for v in ("c", "stl", "str", "sbl", "sbr") for m in ("", "_f")],
}


def views(path: str, mean, std) -> dict[str, np.ndarray]:
    from PIL import Image

    from transferkit.backbones.preprocess import normalise
    from transferkit.data.decode import load_image

    img = load_image(path, min_size=SHORT)
    w, h = img.size
    r = img.resize((SHORT, int(SHORT * h / w)) if w <= h else (int(SHORT * w / h), SHORT), Image.Resampling.BICUBIC)
    W, H = r.size
    left, top = int(round((W - CROP) / 2)), int(round((H - CROP) / 2))
    sl, st = (W - SHORT) // 2, (H - SHORT) // 2  # the centre square
    d = SHORT - CROP
    boxes = {"c": (left, top), "tl": (0, 0), "tr": (W - CROP, 0), "bl": (0, H - CROP), "br": (W - CROP, H - CROP),
             "stl": (sl, st), "str": (sl + d, st), "sbl": (sl, st + d), "sbr": (sl + d, st + d)}
    return {k: normalise(np.asarray(r.crop((x, y, x + CROP, y + CROP))), mean, std) for k, (x, y) in boxes.items()}


def features(paths: list[str], model: str | None) -> dict[str, np.ndarray]:
    import torch

    from transferkit.backbones.registry import create_backbone

    bb = create_backbone("efficientnet_lite0")
    if model:
        from transferkit.heads.model_file import load_model

        m = load_model(model)
        bb.net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in m.backbone_state.items()})
    bb.net.eval().to(memory_format=torch.channels_last)
    pp = bb.preprocess
    out: dict[str, list] = {k + m: [] for k in VIEWS for m in ("", "_f")}
    with ThreadPoolExecutor(2) as pool, torch.inference_mode():
        for i in range(0, len(paths), 32):
            vs = list(pool.map(lambda p: views(p, pp.mean, pp.std), paths[i : i + 32]))
            for k in VIEWS:
                x = torch.from_numpy(np.stack([v[k] for v in vs])).contiguous(memory_format=torch.channels_last)
                out[k].append(bb.features(x).numpy())
                out[k + "_f"].append(bb.features(x.flip(3)).numpy())
            print(f"{min(i + 32, len(paths))}/{len(paths)} pictures", flush=True)
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> None:
    from transferkit.heads import make_head

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layouts", nargs="+", help="train/ + valid/ layouts of the same photo set")
    ap.add_argument("--model", help="a fine-tuned model file: its network instead of the pretrained one")
    ap.add_argument("--cache", help="keep the features here (.npz) and reuse them")
    args = ap.parse_args()

    def part(layout, sub):
        files = sorted(glob.glob(f"{layout}/{sub}/*/*"))
        return [os.path.realpath(f) for f in files], np.array([Path(f).parent.name for f in files])

    paths = sorted({p for lay in args.layouts for sub in ("train", "valid") for p in part(lay, sub)[0]})
    if args.cache and Path(args.cache).exists():
        z = np.load(args.cache)
        assert list(z["paths"]) == paths, "the cache holds other pictures"
        F = {k: z[k] for k in z.files if k != "paths"}
    else:
        F = features(paths, args.model)
        if args.cache:
            np.savez(args.cache, paths=np.array(paths), **F)
    where = {p: i for i, p in enumerate(paths)}
    totals: dict[str, np.ndarray] = {}
    for lay in args.layouts:
        (tr, ytr), (te, yte) = part(lay, "train"), part(lay, "valid")
        tr, te = [where[p] for p in tr], [where[p] for p in te]
        cells = []
        for name, keys in COMBOS.items():
            Xtr, Xte = (np.mean([F[k][rows] for k in keys], axis=0) for rows in (tr, te))
            errs = [int(np.sum(make_head("logreg", random_state=42).fit(Xtr, ytr).predict(Xte) != yte))]
            for C in (10, 100, 1000):
                h = make_head("logreg", random_state=42, Cs=[C], scaling="sqrt-l2").fit(Xtr, ytr)
                errs.append(int(np.sum(h.predict(Xte) != yte)))
            totals[name] = totals.get(name, 0) + np.array(errs)
            cells.append(f"{name} {errs}")
        print(f"{Path(lay).name} ({len(te)} test photos; errors: CV head, C=10, 100, 1000): " + "; ".join(cells))
    print("all layouts: " + "; ".join(f"{k} {v.tolist()}" for k, v in totals.items()))


if __name__ == "__main__":
    main()
