from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, draw, make_dataset

from transferkit.data import discover, stratified_split
from transferkit.data.discover import require_two_classes
from transferkit.errors import TransferkitError


def test_folder_dataset_finds_nested_files_all_extensions_in_sorted_order(tmp_path):
    root = make_dataset(tmp_path / "data set", per_class=8)
    ds = discover(root)
    assert ds.class_names == sorted(CLASSES)  # sorted, spaces and non-ASCII kept
    assert len(ds) == 24
    assert ds.counts() == dict.fromkeys(sorted(CLASSES), 8)
    for s in ds.samples:
        assert (root / s.path).is_file()
        assert ds.class_names[s.label] == s.path.split("/")[0]
    # nested sub-folders are included
    assert any("/sub dir/" in s.path for s in ds.samples)
    # deterministic: same order twice; within a class sorted by relative path
    assert [s.path for s in discover(root).samples] == [s.path for s in ds.samples]
    for label in range(3):
        paths = [s.path for s in ds.samples if s.label == label]
        assert paths == sorted(paths)
    exts = {Path(s.path).suffix for s in ds.samples}
    assert {".PNG", ".TIFF", ".gif", ".webp", ".bmp", ".jpg", ".jpeg", ".tif"} <= exts


def test_hidden_and_non_image_files_are_ignored(tmp_path):
    root = make_dataset(tmp_path / "d", per_class=2, nested=False)
    (root / "red disc" / "notes.txt").write_text("x")
    (root / "red disc" / ".hidden.jpg").write_bytes(b"x")
    (root / ".git").mkdir()
    draw("disc", np.random.default_rng(0)).save(root / ".git" / "a.png")
    draw("disc", np.random.default_rng(0)).save(root / "loose.png")
    ds = discover(root)
    assert len(ds) == 6
    assert ds.ignored == ["loose.png: image outside any class folder"]


def test_csv_manifest_paths_relative_to_csv(tmp_path):
    root = make_dataset(tmp_path / "imgs", per_class=2, nested=False)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    csv = tmp_path / "manifest.csv"
    rows = ["path,label"] + [
        f"{p.relative_to(tmp_path).as_posix()},{'warm' if 'red' in p.parent.name else 'cold'}" for p in reversed(files)
    ]
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ds = discover(csv)
    assert ds.source == "csv" and ds.root == tmp_path
    assert ds.class_names == ["cold", "warm"]
    assert [s.path for s in ds.samples] == [
        p.relative_to(tmp_path).as_posix() for p in reversed(files)
    ]  # CSV order kept
    assert all((tmp_path / s.path).exists() for s in ds.samples)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p / "nope", "no such file or folder"),
        (lambda p: (p / "empty").mkdir() or (p / "empty"), "no images found"),
        (
            lambda p: (
                ((p / "flat").mkdir(), draw("disc", np.random.default_rng(0)).save(p / "flat" / "a.png"))[0]
                or (p / "flat")
            ),
            "no class sub-folders",
        ),
        (lambda p: (p / "m.csv").write_text("file,class\na.jpg,x\n") and (p / "m.csv"), "columns 'path,label'"),
        (lambda p: (p / "m.txt").write_text("x") and (p / "m.txt"), "or a .csv manifest"),
    ],
)
def test_clear_one_line_errors(tmp_path, setup, message):
    target = setup(tmp_path)
    with pytest.raises(TransferkitError) as exc:
        discover(target)
    text = str(exc.value)
    assert message in text and "\n" not in text
    assert str(target) in text


def test_single_class_is_refused_with_a_hint(tmp_path):
    root = make_dataset(tmp_path / "d", per_class=2, nested=False)
    only = tmp_path / "one"
    (only / "red disc").mkdir(parents=True)
    for f in (root / "red disc").iterdir():
        f.rename(only / "red disc" / f.name)
    ds = discover(only)
    with pytest.raises(TransferkitError, match="only one class .*red disc.* at least two"):
        require_two_classes(ds, str(only))


def test_stratified_split_is_per_class_seeded_and_deterministic():
    labels = np.repeat([0, 1, 2, 3], [40, 20, 4, 1])
    split = stratified_split(labels, 0.25, seed=42)
    assert split.dtype == np.uint8
    assert [int(split[labels == c].sum()) for c in range(4)] == [10, 5, 1, 0]  # a 1-image class stays in train
    assert np.array_equal(split, stratified_split(labels, 0.25, seed=42))
    assert not np.array_equal(split, stratified_split(labels, 0.25, seed=7))
    # a class's assignment does not depend on the other classes
    alone = stratified_split(labels[labels == 0], 0.25, seed=42)
    assert np.array_equal(alone, split[labels == 0])
    assert stratified_split(labels, 0.0, seed=1).sum() == 0
