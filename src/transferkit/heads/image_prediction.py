"""Labelling image files with a trained model: the pipeline under both ``transferkit.predict`` (the verb,
which also accepts a model file's path) and :meth:`TrainedModel.predict`. It replays the model's
backbone exactly (or builds the fine-tuned one the model file holds) and runs the head on its features."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..data import list_images
from ..data.walk import NOT_UTF8, is_utf8_name, printable
from ..engines import backbone_and_engine, resolve_batch_size
from ..engines.batches import ProgressCallback, feature_batches

if TYPE_CHECKING:
    from .model_file import TrainedModel


@dataclass
class Prediction:
    path: str
    labels: list[str]
    probabilities: list[float]

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def confidence(self) -> float:
        return self.probabilities[0]


@dataclass
class PredictResult:
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files as given, folders searched recursively for images (sorted); missing paths reported, not fatal.

    Paths keep the form they were given in (relative stays relative). A file reached twice (listed
    and also inside a listed folder) is kept once, at its first place.
    """
    files, missing, seen = [], [], set()
    for item in inputs:
        p = Path(item)
        if not is_utf8_name(str(p)):
            missing.append((printable(p), NOT_UTF8))
            continue
        if p.is_dir():
            found = list_images(p, missing)
        elif p.exists():
            found = [p]
        else:
            missing.append((str(p), "file not found"))
            continue
        for f in found:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files, missing


def predict_images(
    model: TrainedModel,
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
    """Label images with ``model``, replaying the backbone and preprocessing it was trained with.
    ``weights``: the backbone's weights file, when it is no longer where the model recorded it."""
    files, missing = expand_inputs(inputs)
    result = PredictResult(skipped=list(missing))
    if not files:
        return result
    preprocess, engine, batch_size = model_engine(
        model,
        weights=weights,
        engine=engine,
        device=device,
        precision=precision,
        batch_size=batch_size,
        calibration=files if str(precision).strip().lower() == "int8" else None,
    )
    k = max(1, min(top_k, len(model.class_names)))
    for positions, feats, failures in feature_batches(files, preprocess, engine, batch_size, workers, progress):
        result.skipped.extend((str(files[p]), reason) for p, reason in failures)
        if not positions:
            continue
        proba = model.predict_proba(feats)
        order = np.argsort(-proba, axis=1)[:, :k]
        for row, pos in enumerate(positions):
            result.predictions.append(
                Prediction(
                    path=str(files[pos]),
                    labels=[model.class_names[j] for j in order[row]],
                    probabilities=[float(proba[row, j]) for j in order[row]],
                )
            )
    return result


def model_engine(
    model: TrainedModel,
    *,
    weights=None,
    engine: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | str = 32,
    calibration=None,
):
    """``(preprocess, engine, batch size)`` that turn ``model``'s images into its features: the recorded
    backbone replayed (refusing other weights), or the fine-tuned backbone the model file holds.
    ``calibration``: the image paths an ``int8`` engine is calibrated on."""
    from ..backbones.registry import check_spec
    from ..backbones.replay import replay_request
    from ..engines.factory import pictures_per_batch

    origin = str(model.path or "model")
    if model.backbone_state is not None:  # a fine-tuned backbone travels in the model file
        from ..backbones.finetuned import finetuned_backbone
        from ..engines import create_engine

        backbone = finetuned_backbone(model, origin)
        engine = create_engine(backbone, engine=engine, device=device, precision=precision, calibration=calibration)
    else:
        request = replay_request(model.backbone, origin, weights)
        # from the ONNX cache without rebuilding the network when an earlier run exported this backbone
        backbone, engine = backbone_and_engine(
            request.pop("name"), **request, engine=engine, device=device, precision=precision, calibration=calibration
        )
        check_spec(model.backbone, backbone, origin)
    preprocess = model.preprocess_config()
    return preprocess, engine, pictures_per_batch(resolve_batch_size(batch_size, engine, preprocess.array_size),
                                                  preprocess)
