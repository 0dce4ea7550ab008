"""Run a feature module with PyTorch: inference mode, channels_last, optional autocast.

CPU: threads from the CPUs this process may use; ``precision="bf16"`` autocasts to bfloat16.
CUDA: cuDNN autotuning, autocast to fp16 or bf16, batches copied through a reused pinned buffer with
non-blocking copies. (The CUDA path is written to the PyTorch documentation and reviewed, but was not
run on a GPU when it was written: there was none.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import numpy as np

from ..errors import AdvisedError, TransferkitError
from .pipeline import available_cpus

PRECISIONS = ("fp32", "bf16", "fp16")
_malloc_tuned = False


def keep_freed_memory() -> bool:
    """Stop glibc from handing large freed blocks back to the OS, only to fault them in again.

    PyTorch's CPU allocator is plain malloc. A Lite0 batch of 32 allocates activations of tens of MB,
    which glibc serves with mmap and returns with munmap after every layer, so every batch page-faults
    ~1.2 GB of fresh zeroed memory: measured 300,000 minor faults per batch and a quarter of the CPU
    time spent in the kernel. Serving them from the heap and not trimming it removes ~97 % of those
    faults, at the price of keeping the peak in the process. Set ``TRANSFERKIT_MALLOC_TUNING=0`` to opt out.
    """
    global _malloc_tuned
    if _malloc_tuned or os.environ.get("TRANSFERKIT_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return _malloc_tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1
    except (OSError, AttributeError):  # musl or another libc without mallopt
        ok = False
    _malloc_tuned = ok
    return ok


def _check_precision(precision: str, device_type: str) -> None:
    if precision not in PRECISIONS:
        raise TransferkitError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp16" and device_type == "cpu":
        raise AdvisedError("fp16 is for CUDA devices; on the CPU use {o[precision=bf16]} (or fp32)")


class TorchEngine:
    """``engine(images N x 3 x H x W float32) -> features N x D float32`` with PyTorch."""

    name = "torch"

    def __init__(self, module, device: str = "cpu", channels_last: bool = True, threads: int | None = None,
                 precision: str = "fp32"):
        import torch

        self.device = torch.device(device)
        _check_precision(precision, self.device.type)
        self.precision = precision
        self.threads = None
        if self.device.type == "cpu":
            self.threads = threads or available_cpus()
            torch.set_num_threads(self.threads)
            keep_freed_memory()
        elif self.device.type == "cuda":
            if precision == "bf16" and not torch.cuda.is_bf16_supported():
                raise AdvisedError(
                    "{device}: this GPU does not support bf16; use {o[precision=fp16]}", device=str(self.device)
                )
            torch.backends.cudnn.benchmark = True  # fixed input size: autotune the conv algorithms once
        self.autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.channels_last = channels_last
        self.module = module.eval().to(self.device)
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self._pinned = None  # reused page-locked staging buffer for host -> GPU copies

    def _to_device(self, x):
        import torch

        if self.device.type != "cuda":
            return x
        n = x.shape[0]
        if self._pinned is None or self._pinned.shape[0] < n or self._pinned.shape[1:] != x.shape[1:]:
            self._pinned = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
        staged = self._pinned[:n]
        staged.copy_(x)
        # Safe to reuse the buffer next call: __call__ ends with a device -> host copy, which waits for
        # this stream, so this copy has finished by then.
        return staged.to(self.device, non_blocking=True)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        if len(images) == 0:
            return np.empty((0, 0), np.float32)
        with torch.inference_mode():
            x = self._to_device(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
                        else contextlib.nullcontext())
            with autocast:
                out = self.module(x)
            return out.float().cpu().numpy()

    def describe(self) -> dict:
        return {"engine": self.name, "device": str(self.device), "precision": self.precision, "threads": self.threads}
