"""Dataset layouts that bring their own split: split folders, a manifest's split column, Hugging Face
imagefolder metadata; mixed layouts refused; class folders named like splits warned about."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import draw

from transferkit.data import discover
from transferkit.data.layouts import MixedLayoutError
from transferkit.data.split import SPLIT_NAMES, SPLITS, TEST, TRAIN, VAL
from transferkit.errors import TransferkitError


def images(folder, n, kind="disc", seed=0, prefix="ïmg "):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        draw(kind, rng, 16).save(folder / f"{prefix}{i:02d}.png")
    return folder


def splits_of(ds) -> dict[str, int]:
    return {s.path: s.split for s in ds.samples}


def test_split_values_live_in_one_constant():
    assert SPLITS == {"train": 0, "test": 1, "val": 2}  # 0 and 1 as in every earlier file
    assert SPLIT_NAMES == ("train", "test", "val") and (TRAIN, TEST, VAL) == (0, 1, 2)


def test_train_and_valid_folders_valid_is_the_test_split(tmp_path):
    root = tmp_path / "flower photos"
    images(root / "train" / "red rosé", 3)
    images(root / "train" / "tulip", 2)
    images(root / "train" / "ñ daisy", 2)
    images(root / "valid" / "red rosé", 2)
    images(root / "valid" / "tulip", 1)  # no daisy in valid: fine, and reported
    ds = discover(root)
    assert ds.class_names == ["red rosé", "tulip", "ñ daisy"]  # union, sorted
    assert ds.split_source == "folders"
    split = splits_of(ds)
    assert split["train/red rosé/ïmg 00.png"] == TRAIN and split["valid/tulip/ïmg 00.png"] == TEST
    assert sorted(v for v in split.values()) == [0] * 7 + [1] * 3
    assert [ds.class_names[s.label] for s in ds.samples if s.path.startswith("valid/")].count("red rosé") == 2
    assert any("valid/ has no 'ñ daisy'" in n for n in ds.notes)
    assert any("valid/ is used as the test split" in n for n in ds.notes)
    assert not ds.warnings


def test_train_val_test_keeps_val_as_its_own_split_case_insensitively(tmp_path):
    root = tmp_path / "d"
    for name, n in (("TRAINING", 3), ("Dev", 2), ("Testing", 1)):
        images(root / name / "cat", n)
        images(root / name / "dog", n, "square")
    ds = discover(root)
    assert ds.class_names == ["cat", "dog"]
    counts = np.bincount([s.split for s in ds.samples], minlength=3)
    assert counts.tolist() == [6, 2, 4]  # train, test, val
    assert all(s.split == VAL for s in ds.samples if s.path.startswith("Dev/"))


def test_an_empty_split_folder_is_reported_and_loose_images_ignored(tmp_path):
    root = tmp_path / "d"
    images(root / "train" / "a", 2)
    images(root / "train" / "b", 2)
    images(root / "val" / "a", 1)
    images(root / "val" / "b", 1)
    (root / "test").mkdir()
    images(root / "train", 1, prefix="loose ")
    ds = discover(root)
    assert "test/ is an empty split folder" in ds.notes
    assert [s.split for s in ds.samples].count(TEST) == 2  # val became the test split: test/ is empty
    assert ds.ignored == ["train/loose 00.png: image outside any class folder"]


def test_mixed_split_and_class_folders_is_one_line_naming_both(tmp_path):
    root = tmp_path / "d"
    images(root / "train" / "cat", 2)
    images(root / "dog", 2)
    with pytest.raises(MixedLayoutError) as err:
        discover(root)
    msg = str(err.value)
    assert "\n" not in msg and "split folders (train/)" in msg and "class folders (dog/)" in msg


def test_class_folders_named_like_splits_warn_how_to_read_them_as_splits(tmp_path):
    root = tmp_path / "d"
    images(root / "train", 2)
    images(root / "Test", 2)
    ds = discover(root)
    assert ds.class_names == ["Test", "train"] and ds.split_source is None
    assert all(s.split is None for s in ds.samples)
    assert len(ds.warnings) == 1 and "Test/, train/" in ds.warnings[0] and "train/<class>/" not in ds.warnings[0]
    assert "Test/<class>/..." in ds.warnings[0]


def test_plain_class_folders_are_unchanged(tmp_path):
    root = tmp_path / "d"
    images(root / "cat", 2)
    images(root / "dog", 2)
    ds = discover(root)
    assert ds.split_source is None and not ds.notes and not ds.warnings and ds.source == "folder"


def test_manifest_split_column(tmp_path):
    images(tmp_path / "img", 6)
    rows = [f"img/ïmg {i:02d}.png,{'cat' if i % 2 else 'dog'},{s}" for i, s in
            enumerate(["train", "TRAIN", "val", "test", "Train", "validation"])]
    (tmp_path / "m.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ds = discover(tmp_path / "m.csv")
    assert ds.split_source == "csv column" and [s.split for s in ds.samples] == [0, 0, 2, 1, 0, 2]
    (tmp_path / "two.csv").write_text(
        "path,label,split\nimg/ïmg 00.png,a,train\nimg/ïmg 01.png,b,val\n", encoding="utf-8"
    )
    assert [s.split for s in discover(tmp_path / "two.csv").samples] == [TRAIN, TEST]  # val is the test split
    (tmp_path / "bad.csv").write_text(
        "path,label,split\nimg/ïmg 00.png,a,train\nimg/ïmg 01.png,b,holdout\n", encoding="utf-8"
    )
    with pytest.raises(
        TransferkitError, match=r"bad.csv: row 3 has split 'holdout'; the split column takes train, val or test"
    ):
        discover(tmp_path / "bad.csv")
    (tmp_path / "twice.csv").write_text(
        "path,label,split\nimg/ïmg 00.png,a,train\nimg/ïmg 01.png,b,test\nimg/ïmg 00.png,a,test\n", encoding="utf-8"
    )
    with pytest.raises(
        TransferkitError, match="'img/ïmg 00.png' is listed in two splits .row 2: 'train', row 4: 'test'."
    ):
        discover(tmp_path / "twice.csv")
    (tmp_path / "again.csv").write_text(
        "path,label,split\nimg/ïmg 00.png,a,train\nimg/ïmg 01.png,b,test\nimg/ïmg 00.png,a,train\n", encoding="utf-8"
    )
    again = discover(tmp_path / "again.csv")  # listed twice in the same split: kept once, with its split
    assert [(s.path, s.split) for s in again.samples] == [("img/ïmg 00.png", TRAIN), ("img/ïmg 01.png", TEST)]
    (tmp_path / "none.csv").write_text("path,label\nimg/ïmg 00.png,a\n", encoding="utf-8")
    assert discover(tmp_path / "none.csv").split_source is None


def test_imagefolder_metadata_at_the_top_given_as_file_and_per_split(tmp_path):
    root = tmp_path / "hf"
    images(root, 4)
    (root / "metadata.csv").write_text(
        "file_name,species\nïmg 00.png,cat\nïmg 01.png,dog\nïmg 02.png,cat\nïmg 03.png,dog\n", encoding="utf-8"
    )
    for ds in (discover(root), discover(root / "metadata.csv")):
        assert ds.source == "imagefolder" and ds.class_names == ["cat", "dog"]
        assert [s.path for s in ds.samples][:2] == ["ïmg 00.png", "ïmg 01.png"] and ds.split_source is None
    split_root = tmp_path / "hf split"
    for name, n in (("train", 4), ("test", 2)):
        images(split_root / name, n)
        lines = [f"ïmg {i:02d}.png,{'cat' if i % 2 else 'dog'},extra" for i in range(n)]
        (split_root / name / "metadata.csv").write_text("file_name,label,notes\n" + "\n".join(lines), encoding="utf-8")
    ds = discover(split_root)
    assert ds.split_source == "folders" and ds.class_names == ["cat", "dog"]
    assert splits_of(ds) == {
        **{f"train/ïmg {i:02d}.png": TRAIN for i in range(4)},
        **{f"test/ïmg {i:02d}.png": TEST for i in range(2)},
    }
    (root / "metadata.csv").write_text("file_name,species,colour\nïmg 00.png,cat,red\n", encoding="utf-8")
    with pytest.raises(
        TransferkitError,
        match="needs a label column next to 'file_name' .found: species,colour.; name the label column 'label'",
    ):
        discover(root)


def test_finetune_and_evaluate_on_images_use_the_datasets_own_split(tmp_path):
    """The one rule (data.layouts.dataset_split): split folders win over a re-drawn split; val is the
    validation part of a fine-tuning run."""
    from transferkit.finetuning.data import split_parts

    root = tmp_path / "d"
    for name, n in (("train", 4), ("val", 2), ("test", 2)):
        images(root / name / "cat", n)
        images(root / name / "dog", n, "square")
    parts = split_parts(root, test_size=0.25, seed=42, val_size=0.1)
    top = lambda rows: {parts.rel_paths[r].split("/")[0] for r in rows}  # noqa: E731
    assert top(parts.train) == {"train"} and top(parts.val) == {"val"} and top(parts.test) == {"test"}
    assert (len(parts.train), len(parts.val), len(parts.test)) == (8, 4, 4)
