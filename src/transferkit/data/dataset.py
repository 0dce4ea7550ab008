"""What a dataset is once found: its samples (path, label, split) and classes, and how image files are
listed below a folder. Shared by discovery and the split layouts, so neither imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .walk import walk_files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the dataset root, POSIX separators
    label: int
    split: int | None = None  # from split folders or a manifest's split column (see .layouts); None: not given


@dataclass
class Dataset:
    root: Path
    class_names: list[str]
    samples: list[Sample]
    source: str  # "folder" or "csv"
    ignored: list[str] = field(default_factory=list)  # files seen but not used, with why
    split_source: str | None = None  # "folders" or "csv column" when the dataset brings its split (.layouts)
    notes: list[str] = field(default_factory=list)  # facts worth a line (a class missing from a split, ...)
    warnings: list[str] = field(default_factory=list)  # likely misreadings (classes named like splits, ...)

    def __len__(self) -> int:
        return len(self.samples)

    def absolute(self, sample: Sample) -> Path:
        return self.root / sample.path

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.class_names, 0)
        for s in self.samples:
            counts[self.class_names[s.label]] += 1
        return counts


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def list_images(folder: Path, skipped: list | None = None, seen: dict | None = None,
                avoid: dict | None = None) -> list[Path]:
    """All image files below ``folder`` (recursively, hidden entries skipped), sorted by relative path,
    each real file once (see :mod:`.walk`); what was passed over is appended to ``skipped`` as
    (path, why)."""
    walk = walk_files(folder, is_image_name, seen, avoid)
    if skipped is not None:
        skipped.extend(walk.skipped)
    return walk.files
