"""The images of a fine-tuning run: the same train/test split ``extract`` makes, a validation part
carved out of the train split, standard augmentation, and batches decoded in threads ahead of compute.

- Split: :func:`transferkit.data.stratified_split` with the same ``test_size``/``seed`` as ``extract``
  (or the dataset's own split folders / split column, as ``extract`` uses them), so frozen and
  fine-tuned models are scored on the same test images. The validation part is the dataset's own val
  split when it has one, else the same function applied to the train rows (seed ``seed + 1``); the test split
  is never looked at while training (no early stopping, no choice of C, no choice of epoch).
- Augmentation ("standard"): random resized crop (scale 0.25-1, aspect 3/4-4/3) and a horizontal flip,
  drawn from a generator seeded with ``(seed, epoch, image)`` — the same pictures in any thread order
  and after a resume. Evaluation pictures go through the backbone's own preprocessing, exactly as
  ``predict`` replays it.
- Pillow releases the GIL while decoding and resizing, so a few threads prepare the next batches
  while PyTorch computes the current one.
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..backbones.preprocess import PreprocessConfig
from ..data import discover, load_image, stratified_split
from ..data.decode import DecodeError
from ..data.discover import require_two_classes
from ..data.layouts import dataset_split
from ..data.split import TEST, TRAIN, VAL

AUGMENTS = ("standard", "none")
SCALE, RATIO = (0.25, 1.0), (3 / 4, 4 / 3)


@dataclass
class Parts:
    """Row indices (into ``paths``/``labels``) of each part, and the dataset they come from."""

    root: Path
    class_names: list[str]
    paths: list[str]  # absolute
    rel_paths: list[str]  # as the dataset lists them (relative to its root)
    labels: np.ndarray
    train: np.ndarray  # train split minus the validation part
    val: np.ndarray
    test: np.ndarray


def split_parts(data, test_size: float, seed: int, val_size: float) -> Parts:
    """Discover ``data`` and split it as ``extract`` does, then hold ``val_size`` of the train split out."""
    from ..errors import TransferkitError

    dataset = discover(data)
    require_two_classes(dataset, str(data))
    labels = np.array([s.label for s in dataset.samples])
    split = dataset_split(dataset, test_size, seed)  # a dataset's own split folders / column win
    train_rows = np.flatnonzero(split == TRAIN)
    if np.any(split == VAL):  # the dataset's own val split is the validation part
        val, train = np.flatnonzero(split == VAL), train_rows
    else:
        val_mark = stratified_split(labels[train_rows], val_size, seed + 1)
        val = train_rows[val_mark == 1]
        train = train_rows[val_mark == 0]
    if not len(val):
        raise TransferkitError(
            f"{data}: the train split is too small to hold out a validation part "
            "(each class needs at least two training images)"
        )
    return Parts(
        root=Path(dataset.root),
        class_names=dataset.class_names,
        paths=[str(dataset.absolute(s)) for s in dataset.samples],
        rel_paths=[s.path for s in dataset.samples],
        labels=labels,
        train=train,
        val=val,
        test=np.flatnonzero(split == TEST),
    )


def random_resized_crop(
    img: Image.Image, size: tuple[int, int], rng: np.random.Generator, interpolation: str, flip: bool = True
) -> Image.Image:
    """torchvision's RandomResizedCrop (10 tries, then a centre crop) and RandomHorizontalFlip, on Pillow."""
    w, h = img.size
    area = w * h
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    box = None
    for _ in range(10):
        target = area * rng.uniform(*SCALE)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            box = (left, top, left + cw, top + ch)
            break
    if box is None:  # fall back to a centre crop at the nearest allowed aspect ratio
        in_ratio = w / h
        cw, ch = (
            (w, int(round(w / RATIO[0])))
            if in_ratio < RATIO[0]
            else (int(round(h * RATIO[1])), h)
            if in_ratio > RATIO[1]
            else (w, h)
        )
        cw, ch = min(cw, w), min(ch, h)
        box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
    out = img.resize((size[1], size[0]), Image.Resampling[interpolation.upper()], box=box)
    if flip and rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out


def normalise(img: Image.Image, preprocess: PreprocessConfig) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float32) * np.float32(1 / 255.0)
    arr -= np.asarray(preprocess.mean, dtype=np.float32)
    arr /= np.asarray(preprocess.std, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


class Pictures:
    """Decode (and augment) pictures into normalised float32 arrays; failures come back as reasons."""

    def __init__(self, preprocess: PreprocessConfig, augment: str = "none", seed: int = 0):
        self.preprocess, self.augment, self.seed = preprocess, augment, seed

    def __call__(self, path: str, index: int, epoch: int | None) -> np.ndarray | str:
        pp = self.preprocess
        try:
            if epoch is None or self.augment == "none":
                return pp.to_array(load_image(path, min_size=pp.min_decode_size))
            img = load_image(path, min_size=pp.min_decode_size)
            rng = np.random.default_rng([self.seed, epoch, index])
            return normalise(random_resized_crop(img, pp.input_size, rng, pp.interpolation), pp)
        except DecodeError as exc:
            return str(exc)


def batches(
    rows: np.ndarray,
    paths: list[str],
    pictures: Pictures,
    batch_size: int,
    epoch: int | None,
    workers: int | None = None,
    lookahead_batches: int = 2,
):
    """Yield ``(rows_ok, arrays, failures)`` per batch of ``rows`` in order; ``epoch=None``: no augmentation.

    Decoding runs in ``workers`` threads, up to ``lookahead_batches`` batches ahead of the consumer.
    """
    from ..engines.pipeline import available_cpus

    workers = workers or available_cpus()
    chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transferkit-finetune") as pool:
        pending: deque = deque()

        def submit(chunk):
            return chunk, [pool.submit(pictures, paths[r], int(r), epoch) for r in chunk]

        it = iter(chunks)
        for chunk in it:
            pending.append(submit(chunk))
            if len(pending) >= lookahead_batches:
                break
        while pending:
            chunk, futures = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(submit(nxt))
            ok, arrays, failures = [], [], []
            for r, fut in zip(chunk, futures):
                res = fut.result()
                if isinstance(res, str):
                    failures.append((int(r), res))
                else:
                    ok.append(int(r))
                    arrays.append(res)
            yield np.asarray(ok, dtype=np.int64), (np.stack(arrays) if arrays else None), failures
