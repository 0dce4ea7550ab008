"""Helpers for tests that run a real `transferkit extract` subprocess, freeze it at a named point
(TRANSFERKIT_TEST_STOP_AT, see transferkit.store._testhook) and SIGKILL it there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Small batches and a small buffer, so a 16-image dataset commits several times.
BATCH, BUFFER = 2, 3


def launch(data: Path, out: Path, *extra: str, stop_at: str | None = None, log: Path | None = None,
           prefix: list[str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("TRANSFERKIT_TEST_STOP_AT", None)
    if stop_at:
        env["TRANSFERKIT_TEST_STOP_AT"] = stop_at
    cmd = [sys.executable, "-m", "transferkit", "extract", str(data), "-o", str(out), "-b", str(BATCH),
           "--buffer-rows", str(BUFFER), "--workers", "1", *extra]
    log = log or out.with_name(out.name + ".log")
    fh = open(log, "w")
    return subprocess.Popen([*(prefix or []), *cmd], env=env, stdout=fh, stderr=subprocess.STDOUT, text=True)


def state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def wait_stopped(proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until ``proc`` has frozen itself (SIGSTOP from the test hook)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"extraction exited ({proc.returncode}) before reaching its stop point:\n{_log(proc)}")
        if state(proc.pid) == "T":
            return
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"extraction did not reach its stop point in {timeout} s:\n{_log(proc)}")


def sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _log(proc: subprocess.Popen) -> str:
    try:
        return Path(proc.args[proc.args.index("-o") + 1] + ".log").read_text()[-3000:]
    except Exception:  # noqa: BLE001
        return "(no log)"


def assert_same_file(a: Path, b: Path) -> None:
    """features, labels, paths, split, label_names and skipped are equal, bit for bit."""
    import h5py

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in ("features", "labels", "paths", "split", "label_names", "skipped"):
            x, y = fa[name][()], fb[name][()]
            assert x.dtype == y.dtype and x.shape == y.shape, (name, x.dtype, y.dtype, x.shape, y.shape)
            if x.dtype.kind == "f":
                assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), f"{name} differ"
            else:
                assert np.array_equal(x, y), f"{name} differ"
        assert fa.attrs["complete"] and fb.attrs["complete"]
