"""What ``extract`` returns, whether its batches were computed here or on Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .data.split import STRATIFIED


@dataclass
class ExtractResult:
    path: Path
    n_images: int
    n_rows: int
    skipped: list[tuple[str, str]]
    seconds: float
    class_counts: dict[str, int]
    n_train: int
    n_test: int
    status: str = "extracted"  # "extracted", "resumed", "updated" or "up to date"
    n_processed: int | None = None  # images decoded and run through the model in this call
    rows_before: int = 0  # rows the file already had (resumed or kept by an update)
    n_added: int = 0  # --update: files that had no row yet
    n_removed: int = 0  # --update: rows (and skip records) of files no longer in the dataset
    n_val: int = 0  # rows in the val split (only when the dataset came split three ways)
    split_source: str = STRATIFIED  # where the split came from (see data.split)
    notes: list[str] = field(default_factory=list)  # about the dataset (a class missing from a split, ...)
    warnings: list[str] = field(default_factory=list)  # likely misreadings of the dataset
    ignored: list[str] = field(default_factory=list)  # files and folders discovery passed over, with why
    ray: dict | None = None  # a run on Ray: shards, workers, hosts (see distributed.RayReport)

    @property
    def images_per_second(self) -> float:
        n = self.n_images if self.n_processed is None else self.n_processed
        return n / self.seconds if self.seconds > 0 else float("nan")
