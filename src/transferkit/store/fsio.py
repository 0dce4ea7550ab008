"""File-system plumbing for the feature store: atomic replace, fsync, and out-of-space errors.

h5py reports a failed write as ``RuntimeError``/``OSError`` whose text carries ``errno = N``; CPython
ignores SIGXFSZ, so a file-size limit (``ulimit -f``) shows up as EFBIG there, like a full disk as ENOSPC.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
from pathlib import Path

from ..errors import TransferkitError


class OutOfSpaceError(TransferkitError):
    """The disk filled up or the file-size limit was hit; what was committed before is kept."""


_ERRNO = re.compile(r"errno = (\d+)")


def space_errno(exc: BaseException) -> int | None:
    """ENOSPC, EFBIG or EDQUOT if ``exc`` is a write that failed for want of room, else None."""
    codes = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
    if isinstance(exc, OSError) and exc.errno in codes:
        return exc.errno
    if isinstance(exc, (OSError, RuntimeError)):
        for match in _ERRNO.finditer(str(exc)):
            if int(match.group(1)) in codes:
                return int(match.group(1))
    return None


def describe_space_problem(code: int, folder: Path) -> str:
    if code == errno.EFBIG:
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        limit = "unlimited" if soft == resource.RLIM_INFINITY else human_bytes(soft)
        return f"the file-size limit was reached (ulimit -f: {limit})"
    if code == errno.EDQUOT:
        return f"the disk quota on {folder} is used up"
    try:
        free = human_bytes(shutil.disk_usage(folder).free)
    except OSError:
        free = "unknown"
    return f"the disk holding {folder} is full ({free} free)"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file renamed over it: a failure midway
    leaves the old file (or none), never a half-written one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
