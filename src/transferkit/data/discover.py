"""Find the labelled images of a dataset: a folder with one sub-folder per class, or a CSV manifest.

Order is deterministic: classes sorted by name, files sorted by their path relative to the class
folder (images may sit in nested folders below it). CSV manifests keep their row order.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TransferkitError

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


def list_images(folder: Path) -> list[Path]:
    """All image files below ``folder`` (recursively, hidden entries skipped), sorted by relative path."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath) / f for f in filenames if is_image_name(f))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def discover(data: str | os.PathLike) -> Dataset:
    """Describe the dataset at ``data`` (a class-folder tree or a ``.csv`` manifest)."""
    path = Path(data)
    if not path.exists():
        raise TransferkitError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise TransferkitError(f"{path}: expected a folder with one sub-folder per class, or a .csv manifest")
        return _from_csv(path)
    from . import layouts

    dataset = layouts.read_folder_layout(path) or _from_folder(path)
    layouts.split_named_classes(dataset)
    return dataset


def _from_folder(root: Path) -> Dataset:
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and is_image_name(p.name))
    class_names: list[str] = []
    samples: list[Sample] = []
    for class_dir in class_dirs:
        files = list_images(class_dir)
        if not files:
            continue
        label = len(class_names)
        class_names.append(class_dir.name)
        samples.extend(Sample(p.relative_to(root).as_posix(), label) for p in files)
    if not samples:
        if loose:
            raise TransferkitError(
                f"{root}: found {len(loose)} images directly in the folder but no class sub-folders; "
                "put each class's images in a sub-folder named after the class"
            )
        raise TransferkitError(
            f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} in class sub-folders)"
        )
    ignored = [f"{name}: image outside any class folder" for name in loose]
    return Dataset(root=root, class_names=class_names, samples=samples, source="folder", ignored=ignored)


def _from_csv(csv_path: Path) -> Dataset:
    from .layouts import apply_split_column, manifest_columns

    root = csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            path_col, label_col = manifest_columns(csv_path, fields)
            reader.fieldnames = fields
            records = [r for r in reader if r.get(path_col)]
            rows = [(r[path_col].strip(), (r[label_col] or "").strip()) for r in records]
    except UnicodeDecodeError as exc:
        raise TransferkitError(f"{csv_path}: not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise TransferkitError(f"{csv_path}: malformed CSV ({exc})") from None
    if not rows:
        raise TransferkitError(f"{csv_path}: the manifest lists no images")
    for line, (_, label) in enumerate(rows, start=2):
        if not label:
            raise TransferkitError(f"{csv_path}: row {line} has an empty label")
    class_names = sorted({label for _, label in rows})
    index = {name: i for i, name in enumerate(class_names)}
    samples = []
    for p, label in rows:
        rel = Path(p)
        rel_posix = rel.as_posix() if not rel.is_absolute() else os.path.relpath(rel, root).replace(os.sep, "/")
        samples.append(Sample(rel_posix, index[label]))
    dataset = Dataset(root=root, class_names=class_names, samples=samples,
                      source="csv" if path_col == "path" else "imagefolder")
    return apply_split_column(dataset, [r.get("split") for r in records] if "split" in fields else None, csv_path)


def require_two_classes(dataset: Dataset, where: str) -> None:
    if len(dataset.class_names) < 2:
        only = dataset.class_names[0] if dataset.class_names else "none"
        raise TransferkitError(
            f"{where}: only one class ({only!r}); a classifier needs at least two "
            "(did you point at a class folder instead of the dataset root?)"
        )
