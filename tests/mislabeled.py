"""A tiny CSV-manifest dataset whose test split holds known mistakes, for the report tests.

The split is a pure function of the labels (``stratified_split``), so the rows that will land in the
test split are known before any image is drawn: a few of them get a picture of another class while
keeping their label. A logistic head trained on the (clean) train split then gets exactly those
wrong, with the drawn class as its prediction.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import CLASSES, add_bad_files, draw

from transferkit.data import stratified_split

# (label kept in the manifest, shape actually drawn), applied to the first test row(s) of the label
MISLABELED = [("red disc", "square"), ("grün stripes", "disc"), ("blue square", "stripes")]
PER_CLASS = 16


@dataclass
class MislabeledSet:
    root: Path
    manifest: Path
    errors: dict[str, tuple[str, str]]  # path -> (true label in the manifest, label of what is drawn)
    bad: dict[str, str]  # path -> reason keyword of the unreadable files


def make_mislabeled(root: Path, per_class: int = PER_CLASS, seed: int = 3) -> MislabeledSet:
    rng = np.random.default_rng(seed)
    names = sorted(CLASSES)
    kind_label = {kind: name for name, kind in CLASSES.items()}
    rows = [(f"{name}/img {i:02d}.png", name) for name in names for i in range(per_class)]
    bad_dir = root / "red disc" / "broken"
    bad = {f"red disc/broken/{n}": why for n, why in add_bad_files(bad_dir).items()}
    rows += [(p, "red disc") for p in bad]
    labels = np.array([names.index(label) for _, label in rows])
    test = stratified_split(labels, 0.25, 42) == 1  # what `extract --test-size 0.25 --seed 42` will do
    errors = {}
    for label, drawn in MISLABELED:
        path = next(p for (p, lab), t in zip(rows, test) if t and lab == label and p not in bad)
        errors[path] = (label, kind_label[drawn])
    for path, label in rows:
        if path in bad:
            continue
        kind = CLASSES[errors[path][1]] if path in errors else CLASSES[label]
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        draw(kind, rng).save(root / path)
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        w.writerows(rows)
    return MislabeledSet(root=root, manifest=manifest, errors=errors, bad=bad)
