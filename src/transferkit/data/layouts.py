"""Dataset layouts that carry their own split, and the checks that keep them from being misread.

* **Split folders** — ``DATA/train/<class>/...``, ``DATA/valid/<class>/...`` (and ``test/``), the way
  the classic tutorials ship their photos. Top-level folder names are matched case-insensitively:
  train/training; val/valid/validation/dev; test/testing. The classes are the union of the class
  folders of every split (sorted by name); each row's split comes from its folder. With train +
  val only, val is the test split (as the tutorials use it); with train + val + test, val is kept
  as its own split (value 2, see :mod:`.split`).
* **A ``split`` column** in a CSV manifest (train/val/test, the same names as the folders).
* **Hugging Face imagefolder** — a ``metadata.csv`` with a ``file_name`` column and a label column,
  at the top of DATA or in each split folder, or given as DATA itself.

A top level that mixes split folders with class folders is refused (one line naming both kinds),
and a plain class-folder dataset whose classes are named like splits gets a warning saying how to
make it read as splits.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from .dataset import Dataset, Sample, is_image_name, list_images
from .split import FROM_COLUMN, FROM_FOLDERS, SPLIT_NAMES, TEST, TRAIN, VAL

SPLIT_FOLDER_NAMES = {"train": TRAIN, "training": TRAIN, "val": VAL, "valid": VAL, "validation": VAL, "dev": VAL,
                      "test": TEST, "testing": TEST}
METADATA = "metadata.csv"  # Hugging Face imagefolder's per-folder label file
FILE_NAME = "file_name"


class MixedLayoutError(TransferkitError):
    """Split folders and class folders side by side at the top of a dataset."""


def split_of_name(name: str) -> int | None:
    """The split value a folder or column value names (case-insensitive), or None."""
    return SPLIT_FOLDER_NAMES.get(name.strip().lower())


def _subfolders(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


# -- folders -----------------------------------------------------------------------------------------
def read_folder_layout(root: Path) -> Dataset | None:
    """The dataset at ``root`` when it is split folders or imagefolder metadata; None for plain class folders."""
    if (root / METADATA).is_file():
        return _metadata_dataset(root / METADATA)
    dirs = _subfolders(root)
    splits = [d for d in dirs if split_of_name(d.name) is not None and (_subfolders(d) or (d / METADATA).is_file())]
    if not splits:
        return None
    empty_splits = [d for d in dirs if d not in splits and split_of_name(d.name) is not None and not list_images(d)]
    classes = [d for d in dirs if d not in splits and d not in empty_splits and list_images(d)]
    if classes:
        raise MixedLayoutError(
            f"{root}: mixes split folders ({', '.join(d.name + '/' for d in splits)}) with class folders "
            f"({', '.join(d.name + '/' for d in classes[:5])}{', …' if len(classes) > 5 else ''}); "
            "put every class folder inside a split folder (train/<class>/...), or move the split folders elsewhere"
        )
    return _split_folders_dataset(root, splits, empty_splits)


def _split_folders_dataset(root: Path, splits: list[Path], empty: list[Path]) -> Dataset:
    found: list[tuple[str, str, int]] = []  # (relative path, class name, split value)
    ignored: list[str] = []
    per_split: dict[str, set[str]] = {}
    for d in splits:
        value = split_of_name(d.name)
        names = per_split.setdefault(d.name, set())
        if (d / METADATA).is_file():
            part = _metadata_dataset(d / METADATA)
            for s in part.samples:
                found.append((f"{d.name}/{s.path}", part.class_names[s.label], value))
                names.add(part.class_names[s.label])
            ignored += [f"{d.name}/{why}" for why in part.ignored]
            continue
        for class_dir in _subfolders(d):
            files = list_images(class_dir)
            if files:
                names.add(class_dir.name)
            found += [(p.relative_to(root).as_posix(), class_dir.name, value) for p in files]
        ignored += [f"{d.name}/{p.name}: image outside any class folder" for p in sorted(d.iterdir())
                    if p.is_file() and is_image_name(p.name)]
    values = {split_of_name(d.name) for d in splits if per_split[d.name]}
    remap = {VAL: TEST} if VAL in values and TEST not in values else {}  # train + valid: valid is the test split
    class_names = sorted({c for _, c, _ in found})
    index = {c: i for i, c in enumerate(class_names)}
    samples = [Sample(p, index[c], remap.get(v, v)) for p, c, v in found]
    notes = [f"{d.name}/ is an empty split folder" for d in empty]
    notes += [f"{name}/ holds no images" for name, cls in per_split.items() if not cls]
    for name, cls in per_split.items():
        missing = [c for c in class_names if c not in cls]
        if cls and missing:
            notes.append(
                f"{name}/ has no {_quoted(missing)} (the class{'es are' if len(missing) > 1 else ' is'} in other "
                "splits)"
            )
    if remap:
        val_dirs = [d.name for d in splits if split_of_name(d.name) == VAL]
        notes.append(f"no test folder: {', '.join(v + '/' for v in val_dirs)} is used as the test split")
    if not samples:
        raise TransferkitError(
            f"{root}: the split folders ({', '.join(d.name + '/' for d in splits)}) hold no images in class sub-folders"
        )
    return Dataset(
        root=root,
        class_names=class_names,
        samples=samples,
        source="folder",
        ignored=ignored,
        split_source=FROM_FOLDERS,
        notes=notes,
    )


def _quoted(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def split_named_classes(dataset: Dataset) -> None:
    """Warn (in ``dataset.warnings``) when plain class folders are named like splits."""
    named = [c for c in dataset.class_names if split_of_name(c) is not None]
    if dataset.source == "folder" and dataset.split_source is None and named:
        dataset.warnings.append(
            f"{dataset.root}: the class folder(s) {', '.join(n + '/' for n in named)} are named like splits but hold "
            "images directly, so they are read as classes; if they are splits, put each class's images in its own "
            f"folder inside them ({named[0]}/<class>/...) and extract again"
        )


# -- CSV -----------------------------------------------------------------------------------------------
def manifest_columns(csv_path: Path, fields: list[str]) -> tuple[str, str]:
    """(path column, label column) of a manifest's header (lower-cased ``fields``).

    A transferkit manifest has ``path,label``; a Hugging Face imagefolder metadata file has ``file_name``
    and a label column (``label``, or the only column other than ``file_name`` and ``split``)."""
    if "path" in fields and "label" in fields:
        return "path", "label"
    if FILE_NAME in fields:
        if "label" in fields:
            return FILE_NAME, "label"
        others = [f for f in fields if f not in (FILE_NAME, "split") and f]
        if len(others) == 1:
            return FILE_NAME, others[0]
        raise TransferkitError(
            f"{csv_path}: an imagefolder metadata file needs a label column next to 'file_name' (found: "
            f"{','.join(others) or 'none'}); name the label column 'label'"
        )
    raise TransferkitError(
        f"{csv_path}: a manifest needs a header with columns 'path,label' (or an imagefolder 'file_name' and a "
        f"label column; found: {','.join(fields) or 'nothing'})"
    )


def apply_split_column(dataset: Dataset, values: list[str | None], csv_path: Path) -> Dataset:
    """Take each row's split from a manifest's ``split`` column (``values`` None: there is no such column)."""
    if values is None:
        return dataset
    splits = []
    for line, value in enumerate(values, start=2):
        code = split_of_name(value or "")
        if code is None:
            raise TransferkitError(
                f"{csv_path}: row {line} has split {value!r}; the split column takes train, val or test"
            )
        splits.append(code)
    present = set(splits)
    if VAL in present and TEST not in present:  # as with folders: train + val only -> val is the test split
        splits = [TEST if s == VAL else s for s in splits]
        dataset.notes.append(f"{csv_path.name}: no test rows, so the val rows are the test split")
    dataset.samples = [Sample(s.path, s.label, v) for s, v in zip(dataset.samples, splits)]
    dataset.split_source = FROM_COLUMN
    for value in (TRAIN, TEST):
        if value not in set(splits):
            dataset.notes.append(f"{csv_path.name}: no {SPLIT_NAMES[value]} rows")
    return dataset


def read_manifest(csv_path: Path) -> Dataset:
    """The dataset a CSV manifest (or an imagefolder ``metadata.csv``) lists, with its split column if any."""
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


def _metadata_dataset(path: Path) -> Dataset:
    return read_manifest(path)


def split_array(dataset: Dataset) -> np.ndarray:
    """The per-row split a dataset brought along (uint8, values of :data:`.split.SPLITS`)."""
    return np.array([s.split for s in dataset.samples], dtype=np.uint8)


def dataset_split(dataset: Dataset, test_size: float | None, seed: int | None) -> np.ndarray:
    """Each row's split: the one the dataset brings (folders, a split column), else a stratified draw of
    ``test_size`` per class with ``seed`` — the one rule ``extract``, ``finetune`` and ``evaluate`` share."""
    from .split import stratified_split

    if dataset.split_source is not None:
        return split_array(dataset)
    if test_size is None or seed is None:
        raise ValueError("a dataset without its own split needs test_size and seed")
    return stratified_split(np.array([s.label for s in dataset.samples]), test_size, seed)
