"""The trained-model file: one safetensors file holding the head's arrays, with the backbone spec,
preprocessing, class names and training record as JSON in its metadata.

Why safetensors: loading it cannot run code (no pickle, unlike joblib/skops files a user may be
handed), it is a single file that any safetensors reader can open, and it needs no new dependency
(the backbone stack already uses it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomicfile import atomic_path
from ..errors import TransferkitError, first_line
from ..filekind import not_a_regular_file, umask
from . import model_schema

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
    n_features: int | None = None  # features per row the head takes (known once loaded from a file)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if np.ndim(features) == 2:
            self.check_feature_dim(features.shape[1])
        proba = self.head.predict_proba(features)
        if self.calibration:
            from .calibration import apply_temperature

            proba = apply_temperature(proba, float(self.calibration["temperature"]))
        return proba

    def preprocess_config(self):
        """The preprocessing the backbone's features were made with, replayed on new images."""
        from ..backbones.preprocess import PreprocessConfig

        if not isinstance(self.backbone.get("preprocess"), dict) or "input_size" not in self.backbone["preprocess"]:
            raise TransferkitError(f"{self.path or 'model'}: records no image preprocessing, so it cannot label "
                                   "images (was it trained on features from another source?)")
        return PreprocessConfig.from_dict(self.backbone["preprocess"])

    def check_feature_dim(self, dim: int) -> None:
        """Refuse features of another width than the head takes (a head edited to a consistent but
        wrong width passes every check on load; the backbone's output is what shows it)."""
        if self.n_features is not None and dim != self.n_features:
            raise TransferkitError(f"{self.path}: its head takes {self.n_features} features per image, its backbone "
                                   f"gives {dim} (a different backbone or layer, or not a valid model file)")

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
        tensors = {f"head.{k}": np.ascontiguousarray(v) for k, v in arrays.items()}
        tensors.update({f"backbone.{k}": np.ascontiguousarray(v) for k, v in (self.backbone_state or {}).items()})
        with atomic_path(path) as tmp:  # never leave a half-written model under the final name
            save_file(tensors, str(tmp), metadata=meta)
            os.chmod(tmp, 0o666 & ~umask())  # safetensors creates it 0600; respect the umask like every other output
        self.path = path
        return path

    def predict(self, inputs, **kwargs):
        """Label image files or folders: see :func:`transferkit.predict`."""
        from .image_prediction import predict_images

        return predict_images(self, inputs, **kwargs)

    def describe(self) -> dict:
        out = {"backbone": self.backbone, "classes": self.class_names, **self.head.describe()}
        if self.calibration:
            out["calibration"] = self.calibration
        return out


def load_model(path: str | Path) -> TrainedModel:
    """Load a model saved by :meth:`TrainedModel.save` (no code is executed)."""
    from safetensors import SafetensorError, safe_open

    from .registry import HEADS

    path = Path(path)
    if not path.exists():
        raise TransferkitError(f"{path}: no such model file")
    what = not_a_regular_file(path)
    if what:
        raise TransferkitError(f"{path}: is {what}, not a model file")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            arrays = {k.removeprefix("head."): fh.get_tensor(k) for k in fh.keys() if not k.startswith("backbone.")}
            backbone_state = {
                k.removeprefix("backbone."): fh.get_tensor(k) for k in fh.keys() if k.startswith("backbone.")
            }
    except (SafetensorError, OSError, ValueError) as exc:
        raise TransferkitError(f"{path}: {model_schema.why_not_safetensors(path, exc)}") from None
    record = model_schema.parse_metadata(meta, path, MODEL_FORMAT, MODEL_FORMAT_VERSION)
    kind = record["head_kind"]
    if kind not in HEADS:
        raise TransferkitError(f"{path}: head {kind!r} is not known to this transferkit version")
    n_classes = len(record["class_names"])
    model_schema.check_arrays(arrays, path)
    model_schema.check_head_arrays(kind, arrays, record["head"], n_classes, path)
    try:
        head = HEADS[kind].from_state(arrays, record["head"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        raise model_schema.invalid(path, f"its {kind} head cannot be built ({first_line(exc, 100)})") from None
    n_features = model_schema.head_input_dim(kind, arrays, record["head"])
    model_schema.check_probe(head, n_features, n_classes, path)
    calibration = record.get("calibration")
    if calibration is not None and not (
        isinstance(calibration, dict)
        and calibration.get("method") == "temperature"
        and isinstance(calibration.get("temperature"), (int, float))
        and calibration["temperature"] > 0
    ):
        raise TransferkitError(f"{path}: its calibration record is not understood by this transferkit version")
    return TrainedModel(
        head=head,
        class_names=record["class_names"],
        backbone=record["backbone"],
        training=record.get("training", {}),
        path=path,
        backbone_state=backbone_state or None,
        n_features=n_features,
        calibration=calibration,
    )


def as_model(model: TrainedModel | str | os.PathLike) -> TrainedModel:
    """``model`` itself, or the model saved at that path."""
    return model if isinstance(model, TrainedModel) else load_model(model)
