"""One writer per feature file: an exclusive ``flock`` on a sidecar ``<file>.lock``.

The kernel drops a flock when its process dies, however it dies, so a lock left by a killed run never
blocks the next one; a second live writer is refused at once, with the holder's pid in the message.
The lock file is removed on release; a writer that opened it just before removal re-checks that the
path still names the file it locked, so two writers can never both hold it.
"""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path

from ..errors import TransferkitError

try:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if held
except ImportError:  # pragma: no cover - Windows: a byte-range lock, also dropped when the process dies
    import msvcrt

    def _try_lock(fd: int) -> None:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            raise BlockingIOError from None


class LockedError(TransferkitError):
    """Another process is writing the same feature file."""


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class OutputLock:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # the file itself, not the name: a symbolic link to a file being written shares its lock
        self.lock_path = lock_path(Path(os.path.realpath(self.path)))
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        if self.path.parent and not self.path.parent.exists():
            raise TransferkitError(f"{self.path.parent}: output folder does not exist")
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _try_lock(fd)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise LockedError(
                    f"{self.path}: {who} is writing this feature file right now; wait for it to finish "
                    f"(a killed run leaves no lock behind: its lock goes with it)"
                ) from None
            except OSError:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed it between our open and flock: try again
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.lock_path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def holds_output_lock(argument: str = "output"):
    """Decorator: hold :class:`OutputLock` on the function's ``argument`` for the whole call, taken
    before any other work, so a second writer is refused at once."""

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            target = signature.bind(*args, **kwargs).arguments[argument]
            with OutputLock(Path(target)):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
