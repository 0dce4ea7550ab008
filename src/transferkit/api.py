"""The public Python verbs; the CLI is a thin layer over these.

>>> import transferkit as tk
>>> tk.extract("flowers/", "features.h5")                    # doctest: +SKIP
>>> result = tk.train("features.h5", "model.safetensors")     # doctest: +SKIP
>>> tk.load_model("model.safetensors").predict(["rose.jpg"])  # doctest: +SKIP

Each name is imported on first use (see :mod:`transferkit._lazy`): extracting with a cached ONNX
graph never imports PyTorch or scikit-learn.
"""

from ._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("AuditResult", "audit"), ".audit"),
    **dict.fromkeys(("CompareResult", "compare"), ".comparison"),
    **dict.fromkeys(("ExportResult", "export_onnx"), ".export"),
    **dict.fromkeys(("FeatureExportResult", "export_features"), ".store.export_features"),
    "ExtractResult": ".extract_result",
    "extract": ".extraction",
    **dict.fromkeys(("FinetuneResult", "finetune"), ".finetuning"),
    **dict.fromkeys(("TrainedModel", "load_model"), ".heads"),
    **dict.fromkeys(("Prediction", "PredictResult", "predict"), ".prediction"),
    **dict.fromkeys(("FeatureFile", "open_features"), ".store"),
    **dict.fromkeys(("TrainResult", "evaluate", "train"), ".training"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__package__, _EXPORTS)
