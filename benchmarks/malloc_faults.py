"""Page faults and system time of the torch CPU engine's forward pass under three malloc settings.

Each setting runs in its own process (mallopt is process-wide): glibc's default; mmap threshold at its
32 MB maximum without trimming; mmap disabled without trimming (what TorchEngine does on Linux).

    PYTHONPATH=src python benchmarks/malloc_faults.py
"""

from __future__ import annotations

import subprocess
import sys

CODE = r'''
import ctypes, resource, sys, time
mode = sys.argv[1]
libc = ctypes.CDLL("libc.so.6")
if mode == "threshold-32MB":
    libc.mallopt(-3, 32 << 20); libc.mallopt(-1, 1 << 30)   # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
elif mode == "no-mmap":
    libc.mallopt(-4, 0); libc.mallopt(-1, 1 << 30)         # M_MMAP_MAX, M_TRIM_THRESHOLD
import torch
from transferkit.backbones import create_backbone
torch.set_num_threads(2)
m = create_backbone().features.eval().to(memory_format=torch.channels_last)
x = torch.randn(32, 3, 224, 224).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    m(x)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(4):
        m(x)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"{mode:15s} faults/batch {(r1.ru_minflt - r0.ru_minflt) / 4:9.0f}  user {r1.ru_utime - r0.ru_utime:5.1f} s"
      f"  system {r1.ru_stime - r0.ru_stime:4.1f} s (4 batches)  peak RSS {r1.ru_maxrss / 1e3:.0f} MB")
'''

if __name__ == "__main__":
    for mode in ("default", "threshold-32MB", "no-mmap"):
        subprocess.run([sys.executable, "-c", CODE, mode], check=True)
