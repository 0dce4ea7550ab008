"""Prediction: new image files -> labels with probabilities, replaying the model's backbone exactly.

The pipeline itself is :mod:`transferkit.heads.image_prediction` (so that :meth:`TrainedModel.predict`
needs nothing above the heads); this verb adds taking a model file's path."""

from __future__ import annotations

import os
from typing import Iterable

from .backbones import Backbone
from .engines.batches import ProgressCallback
from .heads import TrainedModel
from .heads.image_prediction import (  # noqa: F401  (re-exported: the public result types and their helpers)
    Prediction,
    PredictResult,
    expand_inputs,
    model_engine,
    predict_images,
)
from .heads.model_file import as_model


def backbone_for(spec: dict, origin: str, weights: str | os.PathLike | None = None) -> Backbone:
    """Rebuild the backbone a feature file or model records (model, weights, layers, pooling,
    preprocessing), refusing different weights. ``weights``: where the recorded weights file is now,
    if it has moved (its hash must still match)."""
    from .backbones.replay import replay_backbone

    return replay_backbone(spec, origin, weights)


def predict(
    model: TrainedModel | str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    *,
    top_k: int = 5,
    batch_size: int | str = 32,
    workers: int | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    weights: str | os.PathLike | None = None,
    engine: str = "auto",
    precision: str = "auto",
) -> PredictResult:
    """Label images with ``model`` (a :class:`TrainedModel` or a model file's path), replaying the backbone
    and preprocessing it was trained with. ``weights``: the backbone's weights file, when it is no longer
    where the model recorded it."""
    return predict_images(
        as_model(model), inputs, top_k=top_k, batch_size=batch_size, workers=workers, device=device,
        progress=progress, weights=weights, engine=engine, precision=precision,
    )
