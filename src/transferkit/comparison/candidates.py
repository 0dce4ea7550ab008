"""What is compared: the raw-pixel baseline and backbone x layer x pool candidates, and where their
features come from (a reusable feature file, or a fresh extraction into the cache folder)."""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..atomicfile import atomic_path
from ..backbones.backbone import spec_difference
from ..errors import AdvisedError, TransferkitError

PIXELS = "pixels"
DEFAULT_PIXEL_SIZE = 32


@dataclass(frozen=True)
class Candidate:
    """One way of turning images into vectors: a backbone triple passed straight to ``extract()``,
    or the raw-pixel baseline (``model == "pixels"``, images resized to ``pixel_size`` squared)."""

    model: str
    layer: str | None = None  # None: the backbone's default (pooled pre-logits) features
    pool: str = "avg"
    weights: str | None = None  # a local weights file, as extract(weights=) takes it
    pixel_size: int = DEFAULT_PIXEL_SIZE

    @property
    def is_pixels(self) -> bool:
        return self.model == PIXELS

    @property
    def name(self) -> str:
        if self.is_pixels:
            return f"raw pixels {self.pixel_size}x{self.pixel_size}"
        parts = [self.model]
        if self.layer is not None or self.pool != "avg":
            parts.append(f"{self.layer or 'default'}/{self.pool}")
        if self.weights:
            parts.append(f"weights={Path(self.weights).name}")
        return " ".join(parts)

    @property
    def slug(self) -> str:
        """A deterministic, file-name-safe name built from the candidate spec."""
        text = "__".join([self.model, self.layer or "default", self.pool])
        if self.weights:
            text += "__" + hashlib.sha256(str(Path(self.weights).resolve()).encode()).hexdigest()[:8]
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text)

    def to_dict(self) -> dict:
        d = {"model": self.model, "layer": self.layer, "pool": self.pool, "weights": self.weights}
        if self.is_pixels:
            d["pixel_size"] = self.pixel_size
        return d


def parse_baseline(baseline: str | None) -> Candidate | None:
    """``"pixels"`` or ``"pixels:SIZE"`` -> the pixel candidate; ``None``/``"none"`` -> no baseline."""
    if baseline is None or baseline.strip().lower() in ("", "none", "off"):
        return None
    name, _, size = baseline.strip().partition(":")
    if name.lower() != PIXELS:
        raise AdvisedError(
            "{o[baseline]} {baseline!r}: the only baseline is 'pixels' (or 'pixels:SIZE', or 'none')", baseline=baseline
        )
    try:
        n = int(size) if size else DEFAULT_PIXEL_SIZE
    except ValueError:
        raise AdvisedError(
            "{o[baseline]} {baseline!r}: SIZE must be a whole number of pixels, e.g. pixels:32", baseline=baseline
        ) from None
    if not 1 <= n <= 512:
        raise AdvisedError("{o[baseline]} {baseline!r}: SIZE must be between 1 and 512", baseline=baseline)
    return Candidate(PIXELS, pixel_size=n)


def expand(
    models: Sequence[str],
    layers: Sequence[str | None] = (None,),
    pools: Sequence[str] = ("avg",),
    weights: str | None = None,
) -> list[Candidate]:
    """Every model x layer x pool, in that order, without duplicates."""
    out: list[Candidate] = []
    for model in models:
        if not model:
            continue
        if model == PIXELS:
            raise AdvisedError("'pixels' is the baseline, not a model; use {o[baseline=pixels]}")
        for layer in layers or (None,):
            layer = None if layer in (None, "", "default") else layer
            for pool in pools or ("avg",):
                cand = Candidate(model, layer, pool, weights)
                if cand not in out:
                    out.append(cand)
    if not out:
        raise TransferkitError("no models to compare; pass --models M1,M2,...")
    return out


# -- images ------------------------------------------------------------------------------------------
def image_key(root: str | os.PathLike, rel: str) -> str:
    """How an image is identified across feature files: its normalised absolute path."""
    return os.path.normpath(os.path.join(str(root), rel))


def write_manifest(path: Path, keys: Sequence[str], labels: Sequence[str]) -> Path:
    """A CSV manifest (absolute paths) so that ``extract()`` sees exactly the chosen images."""
    with atomic_path(path, sync=False) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        w.writerows(zip(keys, labels))
    return path


def images_digest(keys: Iterable[str]) -> str:
    h = hashlib.sha256()
    for k in keys:
        h.update(k.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:10]


# -- reuse -------------------------------------------------------------------------------------------
@dataclass
class Reusable:
    path: Path
    rows: np.ndarray  # row of each wanted image in the file, -1 where the file recorded it as unreadable


def match_feature_file(
    path: Path, spec: dict, keys: Sequence[str], newest_image_mtime: float, int8: bool = False
) -> Reusable | None:
    """``path`` if it is a complete feature file made with ``spec`` that covers every wanted image
    (as a row, or as a recorded unreadable file) and is newer than all of them; else None.
    ``int8``: only a file extracted in int8 matches; otherwise only one that was not."""
    from ..store import open_features

    try:
        ff = open_features(path)
    except TransferkitError:
        return None
    with ff:
        try:
            if (
                not ff.complete
                or spec_difference(ff.backbone_spec(), spec) is not None
                or (ff.attrs.get("precision") == "int8") != int8
            ):
                return None
            root = ff.attrs.get("dataset_root", "")
            index = {image_key(root, p): i for i, p in enumerate(ff.paths)}
            skipped = {image_key(root, p) for p, _ in ff.skipped}
        except (KeyError, OSError, ValueError):
            return None
    rows = np.array([index.get(k, -1) for k in keys], dtype=np.int64)
    missing = [k for k, r in zip(keys, rows) if r < 0 and k not in skipped]
    if missing or path.stat().st_mtime < newest_image_mtime:
        return None
    return Reusable(path=path, rows=rows)


def find_reusable(
    files: Iterable[Path], spec: dict, keys: Sequence[str], newest_image_mtime: float, int8: bool = False
) -> Reusable | None:
    for path in files:
        found = match_feature_file(Path(path), spec, keys, newest_image_mtime, int8)
        if found is not None:
            return found
    return None


# -- pixels ------------------------------------------------------------------------------------------
def pixel_features(keys: Sequence[str], size: int, batch_size: int = 64, workers: int | None = None):
    """Images resized (box filter, aspect ratio not kept) to size x size RGB in [0, 1], flattened.

    Returns (features (n_ok, 3 * size * size) float32, positions of the decoded images, failures).
    """
    from ..backbones.preprocess import PreprocessConfig
    from ..engines import iter_batches

    cfg = PreprocessConfig(
        input_size=(size, size),
        interpolation="box",
        crop=False,
        crop_pct=1.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )
    parts, positions, failures = [], [], []
    for batch in iter_batches(list(keys), cfg, batch_size=batch_size, workers=workers):
        if batch.indices:
            parts.append(batch.arrays.reshape(len(batch.indices), -1))
            positions.extend(batch.indices)
        failures.extend(batch.failures)
    feats = np.concatenate(parts) if parts else np.empty((0, 3 * size * size), np.float32)
    return feats, np.asarray(positions, dtype=np.int64), failures
