"""Writing a file so that a crash or an error midway leaves the old file (or none), never a half-written
one: write a temporary file beside it, fsync, rename over it, fsync the folder. Every output and cache
entry goes through :func:`atomic_path` (or :func:`atomic_write_text`). Imports nothing heavy, so every
layer can use it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    try:
        fsync_path(folder)
    except OSError:  # some file systems cannot fsync a directory; the rename is still atomic
        pass


def replace(src: Path, dst: Path) -> None:
    """Atomically put ``src`` (already fsynced) at ``dst`` and make the rename durable."""
    os.replace(src, dst)
    fsync_dir(dst.parent if str(dst.parent) else Path("."))


@contextlib.contextmanager
def atomic_path(path: Path, *, unique: bool = False, sync: bool = True):
    """A temporary path beside ``path`` to write the new file to; when the block ends normally it is
    renamed over ``path``, when it raises it is removed: a failure midway leaves the old file (or none),
    never a half-written one. ``unique``: a fresh temporary name (``mkstemp``), for caches that
    concurrent processes may fill at once; else ``path`` + ``.tmp``. ``sync``: fsync the file and the
    rename (outputs a user asked for; a cache entry that a crash loses is rebuilt, so it skips them)."""
    path = Path(path)
    if unique:
        fd, name = tempfile.mkstemp(suffix=".part", prefix=path.name + ".", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        if sync:
            fsync_path(tmp)
            replace(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def atomic_write_text(path: Path, text: str, **kwargs) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file renamed over it (:func:`atomic_path`,
    whose ``unique`` and ``sync`` it takes)."""
    with atomic_path(path, **kwargs) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
