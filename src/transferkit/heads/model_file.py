"""The trained-model file: one safetensors file holding the head's arrays, with the backbone spec,
preprocessing, class names and training record as JSON in its metadata.

Why safetensors: loading it cannot run code (no pickle, unlike joblib/skops files a user may be
handed), it is a single file that any safetensors reader can open, and it needs no new dependency
(the backbone stack already uses it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TransferkitError

MODEL_FORMAT = "transferkit-model"
MODEL_FORMAT_VERSION = 1


@dataclass
class TrainedModel:
    head: object  # a head estimator with to_state/from_state and predict_proba
    class_names: list[str]
    backbone: dict  # Backbone.spec() of the backbone that made the features
    training: dict = field(default_factory=dict)
    path: Path | None = None
    # {"method": "temperature", "temperature": T, ...} from `train --calibrate temperature`, or None
    calibration: dict | None = None
    # fine-tuned backbone weights (state-dict name -> array), saved as "backbone.<name>" tensors;
    # None for a head trained on frozen features (see transferkit.finetuning)
    backbone_state: dict | None = None

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        proba = self.head.predict_proba(features)
        if self.calibration:
            from .calibration import apply_temperature

            proba = apply_temperature(proba, float(self.calibration["temperature"]))
        return proba

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        arrays, info = self.head.to_state()
        meta = {
            "format": MODEL_FORMAT,
            "format_version": str(MODEL_FORMAT_VERSION),
            "model": json.dumps({
                "head_kind": self.head.kind,
                "head": info,
                "class_names": self.class_names,
                "backbone": self.backbone,
                "training": self.training,
                **({"calibration": self.calibration} if self.calibration else {}),
            }),
        }
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tensors = {f"head.{k}": np.ascontiguousarray(v) for k, v in arrays.items()}
        tensors.update({f"backbone.{k}": np.ascontiguousarray(v) for k, v in (self.backbone_state or {}).items()})
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)  # never leave a half-written model under the final name
        self.path = path
        return path

    def predict(self, inputs, **kwargs):
        """Label image files or folders: see :func:`transferkit.predict`."""
        from ..api import predict

        return predict(self, inputs, **kwargs)

    def describe(self) -> dict:
        out = {"backbone": self.backbone, "classes": self.class_names, **self.head.describe()}
        if self.calibration:
            out["calibration"] = self.calibration
        return out


def load_model(path: str | Path) -> TrainedModel:
    """Load a model saved by :meth:`TrainedModel.save` (no code is executed)."""
    from safetensors import SafetensorError, safe_open

    from . import HEADS

    path = Path(path)
    if not path.exists():
        raise TransferkitError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            arrays = {k.removeprefix("head."): fh.get_tensor(k) for k in fh.keys() if not k.startswith("backbone.")}
            backbone_state = {k.removeprefix("backbone."): fh.get_tensor(k) for k in fh.keys() if k.startswith("backbone.")}
    except (SafetensorError, OSError, ValueError) as exc:
        raise TransferkitError(f"{path}: not a transferkit model file ({str(exc).splitlines()[0][:120]})") from None
    if meta.get("format") != MODEL_FORMAT:
        raise TransferkitError(f"{path}: not a transferkit model file (no format='{MODEL_FORMAT}' metadata)")
    record = json.loads(meta["model"])
    kind = record["head_kind"]
    if kind not in HEADS:
        raise TransferkitError(f"{path}: head {kind!r} is not known to this transferkit version")
    head = HEADS[kind].from_state(arrays, record["head"])
    calibration = record.get("calibration")
    if calibration is not None and not (isinstance(calibration, dict) and calibration.get("method") == "temperature"
                                        and isinstance(calibration.get("temperature"), (int, float))
                                        and calibration["temperature"] > 0):
        raise TransferkitError(f"{path}: its calibration record is not understood by this transferkit version")
    return TrainedModel(head=head, class_names=record["class_names"], backbone=record["backbone"],
                        training=record.get("training", {}), path=path, backbone_state=backbone_state or None,
                        calibration=calibration)
