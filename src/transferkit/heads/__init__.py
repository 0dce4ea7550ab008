"""Classifier heads (scikit-learn-style estimators) and the trained-model file.

Every head: hyper-parameters in ``__init__``, ``fit(X, y)`` returns self, learned state ends in
``_``, ``predict_proba``, ``to_state()``/``from_state()`` (arrays + JSON for the safetensors model
file, no pickle) and ``to_torch()`` (features -> probabilities as a torch module, for export).
"""

import importlib
from collections.abc import Mapping

from .._lazy import lazy_exports
from .model_file import TrainedModel, load_model

# kind -> (module, class). Each head's module is imported when that head is used: loading a saved
# logistic-regression model must not import the MLP's and k-NN's PyTorch.
_HEAD_CLASSES = {"logreg": (".logreg", "LogisticHead"), "linear-svm": (".svm", "LinearSVMHead"),
                 "mlp": (".mlp", "MLPHead"), "knn": (".knn", "KNNHead")}
OUT_OF_CORE_HEADS = ("logreg", "linear-svm", "mlp")


class _Heads(Mapping):
    """``HEADS[kind]`` -> the head class, imported on first use; iterating gives the kinds."""

    def __getitem__(self, kind: str):
        module, name = _HEAD_CLASSES[kind]
        return getattr(importlib.import_module(module, __package__), name)

    def __iter__(self):
        return iter(_HEAD_CLASSES)

    def __len__(self) -> int:
        return len(_HEAD_CLASSES)


HEADS = _Heads()
__getattr__, _ = lazy_exports(__package__, {
    "AutoHead": ".auto", "DEFAULT_CS": ".linear", **{name: module for module, name in _HEAD_CLASSES.values()}})


def make_head(kind: str, *, cv: int = 3, class_weight=None, random_state=42, n_jobs=None, **params):
    """A head by name with the common settings; settings a head does not take are left out."""
    from ..errors import TransferkitError

    if kind == "auto":
        from .auto import AutoHead

        return AutoHead(cv=cv, class_weight=class_weight, random_state=random_state, n_jobs=n_jobs,
                        head_params=params or None)
    if kind not in HEADS:
        raise TransferkitError(f"unknown head {kind!r}; choose one of {', '.join([*HEADS, 'auto'])}")
    cls = HEADS[kind]
    accepted = cls().get_params()
    common = {"cv": cv, "class_weight": class_weight, "random_state": random_state, "n_jobs": n_jobs}
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TransferkitError(f"head {kind!r} takes no option(s) {', '.join(unknown)}")
    kwargs = {k: v for k, v in common.items() if k in accepted and not (k == "cv" and kind == "mlp")}
    kwargs.update(params)
    return cls(**kwargs)


__all__ = ["DEFAULT_CS", "HEADS", "OUT_OF_CORE_HEADS", "AutoHead", "KNNHead", "LinearSVMHead", "LogisticHead",
           "MLPHead", "TrainedModel", "load_model", "make_head"]
