"""Classifier heads (scikit-learn-style estimators) and the trained-model file."""

from .logreg import DEFAULT_CS, LogisticHead
from .model_file import TrainedModel, load_model

HEADS = {LogisticHead.kind: LogisticHead}

__all__ = ["DEFAULT_CS", "HEADS", "LogisticHead", "TrainedModel", "load_model"]
