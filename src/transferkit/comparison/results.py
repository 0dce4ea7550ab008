"""What ``compare`` returns: one result per candidate and the whole comparison. Its own module so that the
report (which reads these) and the run (which builds them, then writes the report) do not import each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from .candidates import Candidate

SIGNIFICANCE = 0.05


@dataclass
class CandidateResult:
    candidate: Candidate
    dims: int | None = None
    logme: float | None = None
    hscore: float | None = None
    accuracy: np.ndarray | None = None  # per fold
    macro_f1: np.ndarray | None = None  # per fold
    extract_seconds: float = 0.0  # spent in this run (0 when the features were reused)
    reused: bool = False
    feature_file: Path | None = None
    train_seconds: float = 0.0  # standardise + fit + predict, summed over folds
    score_seconds: float = 0.0  # LogME and H-score together
    not_converged: int = 0
    delta_vs_best: float | None = None  # mean per-fold accuracy difference to the best candidate
    p_vs_best: float | None = None  # corrected resampled t-test of that difference
    error: str | None = None

    @property
    def name(self) -> str:
        return self.candidate.name

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def accuracy_mean(self) -> float:
        return float(self.accuracy.mean()) if self.accuracy is not None else float("nan")

    @property
    def accuracy_std(self) -> float:
        return float(self.accuracy.std()) if self.accuracy is not None else float("nan")

    @property
    def macro_f1_mean(self) -> float:
        return float(self.macro_f1.mean()) if self.macro_f1 is not None else float("nan")

    @property
    def macro_f1_std(self) -> float:
        return float(self.macro_f1.std()) if self.macro_f1 is not None else float("nan")

    @property
    def tied_with_best(self) -> bool:
        """Not distinguishable from the best candidate at the 5% level (the best itself included)."""
        return self.ok and (self.p_vs_best is None or self.p_vs_best >= SIGNIFICANCE)


@dataclass
class CompareResult:
    rows: list[CandidateResult]  # ordered by LogME, best first; failed candidates last
    class_names: list[str]
    n_images: int  # images every candidate could read, the ones scored
    n_dataset: int  # images in the dataset before --sample
    folds: int
    sample: int | None
    seed: int
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (image, why) left out of every candidate
    out_dir: Path | None = None
    csv_path: Path | None = None
    json_path: Path | None = None
    png_path: Path | None = None

    @property
    def best(self) -> CandidateResult:
        """The candidate with the highest mean CV accuracy."""
        ok = [r for r in self.rows if r.ok]
        if not ok:
            raise TransferkitError("no candidate could be scored")
        return max(ok, key=lambda r: r.accuracy_mean)

    def __getitem__(self, name: str) -> CandidateResult:
        for r in self.rows:
            if r.name == name or r.candidate.model == name:
                return r
        raise KeyError(name)
