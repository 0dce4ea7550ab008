"""What kind of file system object a path is, asked with ``stat`` before anything opens it.

Opening a FIFO (named pipe) for reading blocks until some other process writes to it, so a FIFO that
carries an image's or a model's name would hang the run; a device or socket is no better. Every reader
of user files asks :func:`not_a_regular_file` first and refuses with what the path really is.
"""

from __future__ import annotations

import os
import stat

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def not_a_regular_file(path: str | os.PathLike) -> str | None:
    """None for a regular file (or a link to one); else what it is, e.g. "a FIFO (named pipe)".
    A missing path or a broken link gives None too: opening it then says so."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    for test, what in _KINDS:
        if test(mode):
            return what
    return "not a regular file"


def umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
