"""Find the labelled images of a dataset: a folder with one sub-folder per class, or a CSV manifest.

Order is deterministic: classes sorted by name, files sorted by their path relative to the class
folder (images may sit in nested folders below it). CSV manifests keep their row order.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import TransferkitError
from ..filekind import not_a_regular_file
from . import layouts
from .dataset import IMAGE_EXTENSIONS, Dataset, Sample, is_image_name, list_images  # noqa: F401  (also importable here)
from .walk import is_utf8_name, printable


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
        return layouts.read_manifest(path)
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


def require_two_classes(dataset: Dataset, where: str) -> None:
    if len(dataset.class_names) < 2:
        only = dataset.class_names[0] if dataset.class_names else "none"
        raise TransferkitError(
            f"{where}: only one class ({only!r}); a classifier needs at least two "
            "(did you point at a class folder instead of the dataset root?)"
        )
