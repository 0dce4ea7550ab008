"""Classifier heads (scikit-learn-style estimators) and the trained-model file.

Every head: hyper-parameters in ``__init__``, ``fit(X, y)`` returns self, learned state ends in
``_``, ``predict_proba``, ``to_state()``/``from_state()`` (arrays + JSON for the safetensors model
file, no pickle) and ``to_torch()`` (features -> probabilities as a torch module, for export).
"""

from .._lazy import lazy_exports
from .model_file import TrainedModel, load_model
from .registry import _HEAD_CLASSES, HEADS, OUT_OF_CORE_HEADS, make_fixed_head  # noqa: F401 (HEADS, OUT_OF_CORE_HEADS exported)

__getattr__, _ = lazy_exports(__package__, {
    "AutoHead": ".auto", "DEFAULT_CS": ".linear", **{name: module for module, name in _HEAD_CLASSES.values()}})


def make_head(kind: str, *, cv: int = 3, class_weight=None, random_state=42, n_jobs=None, **params):
    """A head by name with the common settings; settings a head does not take are left out."""
    if kind == "auto":
        from .auto import AutoHead

        return AutoHead(cv=cv, class_weight=class_weight, random_state=random_state, n_jobs=n_jobs,
                        head_params=params or None)
    return make_fixed_head(kind, cv=cv, class_weight=class_weight, random_state=random_state, n_jobs=n_jobs,
                           **params)


__all__ = ["DEFAULT_CS", "HEADS", "OUT_OF_CORE_HEADS", "AutoHead", "KNNHead", "LinearSVMHead", "LogisticHead",
           "MLPHead", "TrainedModel", "load_model", "make_head"]
