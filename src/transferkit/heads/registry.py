"""The heads by name: ``HEADS[kind]`` imports a head's module on first use, and :func:`make_fixed_head` builds one
with the common settings. Apart from the package's ``__init__`` so that the heads that build others (``auto``)
and the model file (which looks a kind up) do not import the package back."""

import importlib
from collections.abc import Mapping

from ..errors import TransferkitError

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


def make_fixed_head(kind: str, *, cv: int = 3, class_weight=None, random_state=42, n_jobs=None, **params):
    """A head by name (not ``auto``: see :func:`transferkit.heads.make_head`) with the common settings; settings
    a head does not take are left out."""
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
