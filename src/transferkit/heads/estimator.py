"""A scikit-learn-compatible base for heads, without importing scikit-learn.

``get_params`` / ``set_params`` read the hyper-parameters from ``__init__``'s signature, as
scikit-learn's ``BaseEstimator`` does, so ``sklearn.base.clone``, ``GridSearchCV`` and pipelines work
on these heads; ``score`` is the accuracy, as for scikit-learn's classifiers. Importing scikit-learn
costs 1-3 s and ~90 MB (it pulls in SciPy's statistics and pandas), more than a whole fit of the default
head, which needs nothing else from it.
"""

from __future__ import annotations

import inspect

import numpy as np


class ClassifierBase:
    _estimator_type = "classifier"

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def score(self, X, y, sample_weight=None) -> float:
        hit = (self.predict(X) == np.asarray(y)).astype(np.float64)
        return float(np.average(hit, weights=sample_weight))

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags  # only when scikit-learn asks

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags())

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k))]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays and the like
        return a is b
