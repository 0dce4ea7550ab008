"""Rebuilding the backbone that a feature file or a trained model records, exactly."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import TransferkitError
from .backbone import Backbone
from .registry import check_spec, create_backbone


def replay_backbone(spec: dict, origin: str, weights: str | os.PathLike | None = None) -> Backbone:
    """The backbone of ``spec`` (model, weights, layer(s), pool(s), preprocessing), refusing weights
    whose hash differs from the recorded one. ``weights`` points at the weights file when it has moved."""
    recorded = spec.get("weights") or "default"
    if weights is None and recorded not in ("default", "random"):
        if not Path(recorded).exists():
            raise TransferkitError(
                f"{origin}: its backbone weights file {recorded} is missing; pass --weights PATH "
                "(predict(..., weights=PATH)) to say where it is now"
            )
        weights = recorded
    elif weights is None:
        weights = None if recorded == "default" else recorded
    backbone = create_backbone(
        spec["model"], weights=weights, layer=spec.get("layer"), pool=spec.get("pool"),
        preprocess=spec.get("preprocess"),
    )
    check_spec(spec, backbone, origin)
    return backbone
