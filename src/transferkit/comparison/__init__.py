"""Compare representations of one dataset: raw pixels vs backbones vs layers, by paired k-fold CV
accuracy and by transferability scores (LogME, H-score) that need no classifier training."""

from .candidates import Candidate
from .hscore import hscore
from .logme import logme
from .results import CandidateResult, CompareResult
from .run import compare

__all__ = ["Candidate", "CandidateResult", "CompareResult", "compare", "hscore", "logme"]
