"""Run a feature module with PyTorch: inference mode, channels_last, threads from the CPUs we may use."""

from __future__ import annotations

import numpy as np

from .pipeline import available_cpus


class TorchEngine:
    name = "torch"

    def __init__(self, module, device: str = "cpu", channels_last: bool = True, threads: int | None = None):
        import torch

        if device == "cpu":
            torch.set_num_threads(threads or available_cpus())
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.module = module.eval().to(self.device)
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        if len(images) == 0:
            return np.empty((0, 0), np.float32)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = self.module(x)
            return out.float().cpu().numpy()
