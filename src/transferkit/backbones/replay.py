"""Rebuilding the backbone that a feature file or a trained model records, exactly."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import AdvisedError
from .backbone import Backbone
from .registry import check_spec, check_weights, create_backbone


def replay_request(spec: dict, origin: str, weights: str | os.PathLike | None = None) -> dict:
    """The ``create_backbone`` arguments that rebuild ``spec`` (model, weights, layer(s), pool(s),
    preprocessing). ``weights`` points at the weights file when it has moved. A weights file whose hash
    differs from the recorded one is refused here, before anything is built."""
    recorded = spec.get("weights") or "default"
    if weights is None and recorded not in ("default", "random"):
        if not Path(recorded).exists():
            raise AdvisedError(
                "{origin}: its backbone weights file {recorded} is missing; "
                "pass {o[weights=PATH]} to say where it is now",
                origin=origin, recorded=recorded,
            )
        weights = recorded
    elif weights is None:
        weights = None if recorded == "default" else recorded
    if weights not in (None, "random") and Path(weights).is_file():
        from .state_files import file_sha256

        check_weights(spec, file_sha256(weights), f"file:{Path(weights).resolve()}", origin)
    return dict(name=spec["model"], weights=weights, layer=spec.get("layer"), pool=spec.get("pool"),
                preprocess=spec.get("preprocess"))


def replay_backbone(spec: dict, origin: str, weights: str | os.PathLike | None = None) -> Backbone:
    """The backbone of ``spec``, refusing weights whose hash differs from the recorded one."""
    backbone = create_backbone(**replay_request(spec, origin, weights))
    check_spec(spec, backbone, origin)
    return backbone
