"""Run an HDF5-writing step in a forked child process.

When a write fails inside HDF5 (a full disk, a file-size limit), h5py cannot close the file cleanly
any more: its objects keep retrying the failed flush, print tracebacks when garbage-collected, and the
process can crash at exit. The steps that write HDF5 metadata (creating the working file, writing the
finished copy) therefore run in a child; the parent only sees a clean result or an exception carrying
the child's message (and errno, so a full disk is still recognised). Rows are written by the parent
with plain ``pwrite`` calls (see :mod:`.working`), which fail cleanly.

The child dies with its parent (PR_SET_PDEATHSIG), so a killed run leaves no writer behind, and it
never runs the parent's exit handlers. Where ``fork`` is not available the step runs in-process.
"""

from __future__ import annotations

import errno as errno_module
import gc
import json
import os
import signal

from ..errors import TransferkitError, first_line
from . import fsio

ENV_INLINE = "TRANSFERKIT_NO_FORK"  # set to run the steps in-process (debugging)
_report_fd: int | None = None  # set in a child: where its failure report goes


def run(fn, *args, **kwargs) -> None:
    """Call ``fn(*args, **kwargs)`` in a child process; re-raise what it raised (as one line)."""
    if not hasattr(os, "fork") or os.environ.get(ENV_INLINE):
        fn(*args, **kwargs)
        return
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (covered through its effects)
        global _report_fd
        # Never collect the parent's garbage here: a cycle holding e.g. an ONNX Runtime session would be
        # finalised in a process without that library's threads, and can hang there for ever (seen: a
        # futex wait in pthread_cond_destroy). The child runs one step and leaves with os._exit.
        gc.disable()
        try:
            os.close(read_end)
            _report_fd = write_end
            _die_with_parent()
            if os.getppid() != parent:  # the parent died before the line above took effect
                os._exit(1)
            null = os.open(os.devnull, os.O_WRONLY)  # h5py's complaints about a failed file go nowhere
            os.dup2(null, 2)
            fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            fail_fast(exc)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        data = b""
        while chunk := os.read(read_end, 65536):
            data += chunk
        _, status = os.waitpid(pid, 0)
    except BaseException:  # interrupted (Ctrl-C): do not leave the child running
        _kill(pid)
        raise
    finally:
        os.close(read_end)
    if os.WIFSIGNALED(status):
        raise TransferkitError(f"the process writing the file was killed by signal {os.WTERMSIG(status)}")
    if os.WEXITSTATUS(status) == 0:
        return
    report = json.loads(data.decode() or "{}")
    message = report.get("message") or "unknown error"
    if report.get("errno"):
        raise OSError(report["errno"], f"{message} (errno = {report['errno']}, {os.strerror(report['errno'])})")
    if report.get("user_error"):
        raise TransferkitError(message)
    if report.get("type") == "KeyboardInterrupt":
        raise KeyboardInterrupt
    raise RuntimeError(f"{report.get('type', 'error')}: {message}")


def fail_fast(exc: BaseException) -> None:
    """In a child: report ``exc`` to the parent and exit at once, before unwinding the stack closes
    h5py objects of a file whose writes failed (which can crash the process). Elsewhere: nothing."""
    if _report_fd is None:
        return
    report = {"type": type(exc).__name__, "message": first_line(exc, 2000),
              "errno": fsio.space_errno(exc), "user_error": isinstance(exc, TransferkitError)}
    try:
        os.write(_report_fd, json.dumps(report).encode())
    finally:
        os._exit(1)


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the child finishes its step and exits
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    except OSError as exc:  # pragma: no cover
        if exc.errno != errno_module.ESRCH:
            raise
