"""The public Python verbs; the CLI is a thin layer over these.

>>> import transferkit as tk
>>> tk.extract("flowers/", "features.h5")                    # doctest: +SKIP
>>> result = tk.train("features.h5", "model.safetensors")     # doctest: +SKIP
>>> tk.load_model("model.safetensors").predict(["rose.jpg"])  # doctest: +SKIP
"""

from .comparison import CompareResult, compare
from .export import ExportResult, export_onnx
from .extraction import ExtractResult, extract
from .heads import TrainedModel, load_model
from .prediction import Prediction, PredictResult, predict
from .store import FeatureFile, open_features
from .training import TrainResult, evaluate, train

__all__ = [
    "CompareResult", "ExportResult", "ExtractResult", "FeatureFile", "PredictResult", "Prediction", "TrainResult",
    "TrainedModel", "compare", "evaluate", "export_onnx", "extract", "load_model", "open_features", "predict", "train",
]
