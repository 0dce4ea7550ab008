"""Shards of a distributed extraction and the folder of part files that records which are done.

A shard is a contiguous range ``[start, stop)`` of the dataset's images, in dataset order. Every
finished shard becomes one small HDF5 part file in ``OUT.h5.parts/``, written under a temporary name
and renamed, so a part file exists only when it is complete. ``manifest.json`` in the same folder
records the settings of the run; ``--resume`` accepts the parts only when the new run asks for the
same settings, and then redoes only the shards that have no part file.

Part file layout (one per shard)::

  features        n x D float32   features of the decoded images of the shard, in dataset order
  index           n int64         their positions in the dataset (global, not shard-relative)
  skipped_index   k int64         positions of the images that could not be decoded
  skipped_reason  k utf-8         why
  attrs: shard, start, stop, fingerprint (of the manifest), run_id, host, pid, seconds
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import TransferkitError
from ..store.fsio import fsync_dir, fsync_path

PARTS_FORMAT = "transferkit-ray-parts"
PARTS_VERSION = 1
STR = h5py.string_dtype("utf-8")

# How a setting is called on the command line, for "you asked for something else" messages.
OPTION_NAMES = {
    "model": "--model", "weights_sha256": "the backbone weights (sha256)", "layer": "--layer", "pool": "--pool",
    "preprocess": "the backbone's preprocessing", "dataset_root": "the dataset folder", "source": "the dataset source",
    "test_size": "--test-size", "seed": "--seed", "n_images": "the number of images", "batch_size": "--batch-size",
    "engine": "--engine", "shard_size": "--ray-shard-size", "listing_sha256": "the list of images and labels",
}


@dataclass(frozen=True)
class Shard:
    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return f"part-{self.index:06d}.h5"


def make_shards(n_images: int, shard_size: int) -> list[Shard]:
    """Contiguous ranges of at most ``shard_size`` images covering ``range(n_images)`` in order."""
    if shard_size < 1:
        raise TransferkitError(f"shard size must be at least 1, got {shard_size}")
    return [
        Shard(i, start, min(start + shard_size, n_images)) for i, start in enumerate(range(0, n_images, shard_size))
    ]


def listing_sha256(paths: list[str], labels, class_names: list[str]) -> str:
    """A hash of the image list, its labels and the class names: a resumed run must see the same dataset."""
    h = hashlib.sha256()
    h.update(json.dumps(class_names).encode())
    for path, label in zip(paths, labels):
        h.update(f"{path}\t{int(label)}\n".encode())
    return h.hexdigest()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _show(value) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class PartsDir:
    """The ``OUT.h5.parts/`` folder next to the output: manifest, lock, and one part file per finished shard."""

    def __init__(self, output: str | os.PathLike):
        output = Path(output)
        self.output = output
        self.path = output.with_name(output.name + ".parts")
        self.manifest_path = self.path / "manifest.json"
        self._lock_fd: int | None = None
        self.settings: dict = {}
        self.fingerprint = ""

    # -- lifecycle -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.manifest_path.exists()

    def open(self, settings: dict, *, resume: bool) -> None:
        """Create the folder for ``settings`` or, with ``resume``, check that it was made with the same ones."""
        settings = _jsonable(settings)
        try:
            self._open(settings, resume)
        except BaseException:
            self.close()  # a refused resume must not keep the folder locked
            raise
        self.settings = settings
        self.fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    def _open(self, settings: dict, resume: bool) -> None:
        if self.path.exists():
            self.lock()  # refuses while another live run holds the folder
        if resume and self.exists():
            try:
                recorded = json.loads(self.manifest_path.read_text())
            except (OSError, ValueError) as exc:
                raise TransferkitError(
                    f"{self.manifest_path}: unreadable manifest ({exc}); start over with --overwrite"
                ) from None
            if recorded.get("format") != PARTS_FORMAT or recorded.get("version") != PARTS_VERSION:
                raise TransferkitError(
                    f"{self.manifest_path}: not a transferkit parts manifest (version {recorded.get('version')}); "
                    "start over with --overwrite"
                )
            self._check_same(recorded.get("settings", {}), settings)
            for tmp in self.path.glob("*.tmp"):  # a part the killed run was writing: never complete
                tmp.unlink()
        else:
            if self.path.exists():
                self.close()
                shutil.rmtree(self.path)
            self.path.mkdir()
            self.lock()
            _atomic_write_text(
                self.manifest_path,
                json.dumps(
                    {"format": PARTS_FORMAT, "version": PARTS_VERSION, "settings": settings}, indent=1, sort_keys=True
                ),
            )

    def _check_same(self, recorded: dict, wanted: dict) -> None:
        for key in sorted(set(recorded) | set(wanted)):
            old, new = recorded.get(key), wanted.get(key)
            if old != new:
                what = OPTION_NAMES.get(key, key)
                raise TransferkitError(
                    f"{self.path}: cannot resume: the interrupted run used {what} = {_show(old)}, this run asks for "
                    f"{_show(new)}; resume with the same settings, or pass --overwrite to start over"
                )

    def lock(self) -> None:
        """Hold an exclusive lock on the folder for this process's lifetime (released on close or death)."""
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise TransferkitError(f"{self.path}: another extraction is writing these parts right now") from None
            raise
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    # -- parts -----------------------------------------------------------------------------------
    def part_path(self, shard: Shard) -> Path:
        return self.path / shard.name

    def is_done(self, shard: Shard) -> bool:
        """A part counts only if it is there, readable, and made by a run with these settings for this range."""
        path = self.part_path(shard)
        if not path.exists():
            return False
        try:
            with h5py.File(path, "r") as f:
                a = f.attrs
                return (
                    a.get("fingerprint") == self.fingerprint
                    and int(a["start"]) == shard.start
                    and int(a["stop"]) == shard.stop
                )
        except (OSError, KeyError, ValueError):
            return False

    def write(self, shard: Shard, result: dict, feature_dim: int, run_id: str) -> Path:
        """Write one shard's result atomically: to ``part-N.h5.tmp``, fsync, then rename to ``part-N.h5``."""
        final = self.part_path(shard)
        tmp = final.with_name(final.name + ".tmp")
        feats = np.asarray(result["features"], dtype=np.float32).reshape(-1, feature_dim)
        index = np.asarray(result["index"], dtype=np.int64)
        failures = result["failures"]
        if len(feats) != len(index):
            raise RuntimeError(f"shard {shard.index}: {len(feats)} feature rows for {len(index)} images")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("features", data=feats)
            f.create_dataset("index", data=index)
            f.create_dataset("skipped_index", data=np.array([p for p, _ in failures], dtype=np.int64))
            f.create_dataset("skipped_reason", data=np.array([r for _, r in failures], dtype=object), dtype=STR)
            for key, value in (
                ("shard", shard.index),
                ("start", shard.start),
                ("stop", shard.stop),
                ("fingerprint", self.fingerprint),
                ("run_id", run_id),
                ("host", result.get("host", "")),
                ("pid", int(result.get("pid", -1))),
                ("seconds", float(result.get("seconds", 0.0))),
            ):
                f.attrs[key] = value
        fsync_path(tmp)
        os.replace(tmp, final)
        fsync_dir(self.path)
        return final

    def record(self, shard: Shard) -> dict:
        """Who computed a finished shard: the driver run, the host and the worker process."""
        with h5py.File(self.part_path(shard), "r") as f:
            a = f.attrs
            return {"shard": shard.index, "run_id": str(a["run_id"]), "host": str(a["host"]), "pid": int(a["pid"])}

    def read(self, shard: Shard) -> dict:
        with h5py.File(self.part_path(shard), "r") as f:
            return {
                "features": f["features"][()],
                "index": f["index"][()],
                "failures": list(
                    zip(
                        f["skipped_index"][()].tolist(),
                        [r.decode() if isinstance(r, bytes) else str(r) for r in f["skipped_reason"][()]],
                    )
                ),
            }


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    fsync_path(tmp)
    os.replace(tmp, path)
