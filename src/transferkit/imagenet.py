"""What the pretrained network alone says about images: its own ImageNet classifier, top-k classes.

This is where transfer learning starts: the backbone knows ImageNet's 1,000 classes, not yours (a
flower photo comes out as "daisy" at best, "flamingo" or "vase" at worst). The class names come
offline from timm's copy of ImageNet's class information (``timm.data.ImageNetInfo``).
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from .engines.batches import ProgressCallback
from .errors import TransferkitError
from .prediction import Prediction, PredictResult, expand_inputs

N_IMAGENET_CLASSES = 1000


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order, each its first (commonest) English name."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(", ")[0] for i in range(N_IMAGENET_CLASSES)]


def classify_imagenet(
    inputs: Iterable[str | os.PathLike],
    *,
    model: str = "efficientnet_lite0",
    weights: str | None = None,
    top_k: int = 5,
    batch_size: int = 32,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> PredictResult:
    """Top-``top_k`` ImageNet classes of each image by ``model``'s own classifier (PyTorch on the CPU).

    ``inputs``: image files and/or folders (searched recursively), as for :func:`transferkit.predict`;
    unreadable files are reported in ``skipped``, not fatal.
    """
    from .backbones import create_backbone
    from .engines import iter_batches

    files, missing = expand_inputs(inputs)
    result = PredictResult(skipped=list(missing))
    if not files:
        return result
    backbone = create_backbone(model, weights=weights)
    if weights == "random":
        raise TransferkitError("--imagenet needs the model's pretrained weights, not random ones")
    names = imagenet_class_names()
    k = max(1, min(top_k, N_IMAGENET_CLASSES))
    done = 0
    for batch in iter_batches(files, backbone.preprocess, batch_size=batch_size, workers=workers):
        result.skipped.extend((str(files[p]), reason) for p, reason in batch.failures)
        if batch.indices:
            proba = backbone.classify(batch.arrays)
            if proba.shape[1] != N_IMAGENET_CLASSES:
                raise TransferkitError(f"{model}: its classifier has {proba.shape[1]} outputs, not ImageNet's "
                                       f"{N_IMAGENET_CLASSES} classes")
            order = np.argsort(-proba, axis=1)[:, :k]
            for row, pos in enumerate(batch.indices):
                result.predictions.append(Prediction(path=str(files[pos]), labels=[names[j] for j in order[row]],
                                                     probabilities=[float(proba[row, j]) for j in order[row]]))
        done += len(batch.indices) + len(batch.failures)
        if progress is not None:
            progress(done, len(files))
    return result
