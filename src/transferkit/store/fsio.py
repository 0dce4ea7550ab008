"""File-system plumbing for the feature store: out-of-space errors, and (from :mod:`transferkit.atomicfile`,
the one copy) atomic writes and fsync.

h5py reports a failed write as ``RuntimeError``/``OSError`` whose text carries ``errno = N``; CPython
ignores SIGXFSZ, so a file-size limit (``ulimit -f``) shows up as EFBIG there, like a full disk as ENOSPC.
"""

from __future__ import annotations

import errno
import re
import resource
import shutil
from pathlib import Path

from ..atomicfile import (  # noqa: F401  (the store's plumbing in one place)
    atomic_path,
    atomic_write_text,
    fsync_dir,
    fsync_path,
    remove_quietly,
    replace,
)
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
