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
from ..filekind import not_a_regular_file
from .walk import is_utf8_name, printable, walk_files

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


def discover(data: str | os.PathLike) -> Dataset:
    """Describe the dataset at ``data`` (a class-folder tree or a ``.csv`` manifest)."""
    path = Path(data)
    if not path.exists():
        raise TransferkitError(f"{path}: no such file or folder")
    what = not_a_regular_file(path)
    if what and what != "a folder":  # never open a FIFO: it would block
        raise TransferkitError(f"{path}: is {what}, not a dataset folder or .csv manifest")
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
    passed_over: list[tuple[str, str]] = []
    seen: dict = {}  # each real file once, whichever class folders link to it
    folders = {_key(root): f"the dataset folder {printable(root)}",
               **{_key(d): f"class folder {printable(d.name)}" for d in class_dirs}}
    for class_dir in class_dirs:
        if not is_utf8_name(class_dir.name):
            passed_over.append((printable(class_dir), "class folder name is not valid UTF-8 (rename the folder)"))
            continue
        avoid = {k: v for k, v in folders.items() if k != _key(class_dir)}
        files = list_images(class_dir, passed_over, seen, avoid)
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
    ignored = [f"{printable(name)}: image outside any class folder" for name in loose]
    ignored += [f"{printable(os.path.relpath(path, root))}: {why}" for path, why in passed_over]
    return Dataset(root=root, class_names=class_names, samples=samples, source="folder", ignored=ignored)


def _key(folder: Path) -> tuple[int, int]:
    st = folder.stat()
    return st.st_dev, st.st_ino


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
            has_split = "split" in fields  # a split column (see .layouts): carried along with each row
            rows = [(r[path_col].strip(), (r[label_col] or "").strip(), *([r.get("split")] if has_split else []))
                    for r in records]
    except UnicodeDecodeError as exc:
        raise TransferkitError(f"{csv_path}: not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise TransferkitError(f"{csv_path}: malformed CSV ({exc})") from None
    if not rows:
        raise TransferkitError(f"{csv_path}: the manifest lists no images")
    for line, (_, label, *_) in enumerate(rows, start=2):
        if not label:
            raise TransferkitError(f"{csv_path}: row {line} has an empty label")
    rows, ignored = _without_duplicates(csv_path, root, rows)
    class_names = sorted({label for _, label, *_ in rows})
    index = {name: i for i, name in enumerate(class_names)}
    samples = [Sample(p, index[label]) for p, label, *_ in rows]
    dataset = Dataset(root=root, class_names=class_names, samples=samples,
                      source="csv" if path_col == "path" else "imagefolder", ignored=ignored)
    return apply_split_column(dataset, [extra[0] for _, _, *extra in rows] if has_split else None, csv_path)


def _without_duplicates(csv_path: Path, root: Path, rows: list[tuple]):
    """Rows with paths relative to ``root`` (POSIX), each path once: a path listed again with the same
    label is dropped (and noted), with another label refused (it would land in train as one class and
    in test as the other)."""
    first: dict[str, tuple[int, str]] = {}
    kept, ignored = [], []
    for line, (p, label, *extra) in enumerate(rows, start=2):  # extra: the row's split, when given
        rel = Path(p)
        rel_posix = rel.as_posix() if not rel.is_absolute() else os.path.relpath(rel, root).replace(os.sep, "/")
        key = os.path.normpath(rel_posix)  # a/./b.jpg and a/b.jpg name one file
        if key in first:
            line0, label0, *extra0 = first[key]
            if label0 != label:
                raise TransferkitError(f"{csv_path}: {rel_posix!r} is listed with two labels (row {line0}: {label0!r}, "
                                       f"row {line}: {label!r}); keep one row per image")
            if extra0 != extra:
                raise TransferkitError(
                    f"{csv_path}: {rel_posix!r} is listed in two splits (row {line0}: {extra0[0]!r}, "
                    f"row {line}: {extra[0]!r}); keep one row per image"
                )
            ignored.append(f"{rel_posix}: listed again in row {line} (row {line0} has it), kept once")
            continue
        first[key] = (line, label, *extra)
        kept.append((rel_posix, label, *extra))
    return kept, ignored


def require_two_classes(dataset: Dataset, where: str) -> None:
    if len(dataset.class_names) < 2:
        only = dataset.class_names[0] if dataset.class_names else "none"
        raise TransferkitError(
            f"{where}: only one class ({only!r}); a classifier needs at least two "
            "(did you point at a class folder instead of the dataset root?)"
        )
