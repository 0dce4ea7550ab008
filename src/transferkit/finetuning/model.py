"""The network being fine-tuned: a frozen lower part, a trainable upper part and a linear head, plus
rebuilding a fine-tuned backbone from a model file.

The backbone is split at a stage boundary. ``lower`` (stem and the first stages) never changes and
always runs in eval mode and without gradients, so what it computes for an un-augmented picture can be
cached (:mod:`.loop` does that for the validation and test images, and for the training images when
augmentation is off). ``upper`` (the top ``unfreeze`` stages, the 1x1 head convolution and the pooling)
is trained; its BatchNorm layers keep their ImageNet running statistics unless ``bn="train"``
(frozen statistics are the safer default on small data: a batch of 32 gives noisy estimates, and the
train/eval mismatch hurts more than stale statistics do). Their affine weights are trained either way.

The pooled features then go through the head: ``((f - mean) / scale) @ W.T + b``, the logistic-regression
head of the linear probe, whose ``W, b`` keep training; ``mean, scale`` stay fixed.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import TransferkitError

BN_MODES = ("frozen", "train")


def stages(net) -> int:
    """How many stages ``net`` has that ``--unfreeze N`` can count (EfficientNet-style ``blocks``)."""
    blocks = getattr(net, "blocks", None)
    # timm's EfficientNet (the Lite models are): stem, stages, 1x1 head conv + BN, then pooling.
    # MobileNetV3 has the same attributes but pools before its head conv, so it is not accepted.
    if type(net).__name__ != "EfficientNet" or not isinstance(blocks, torch.nn.Sequential):
        return 0
    return len(blocks)


def parse_unfreeze(value, n_stages: int) -> int:
    """``"all"`` -> every stage (and the stem); an int N -> the top N stages (the head conv always trains)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return n_stages + 1  # one more than the stages: the stem too
        try:
            value = int(text)
        except ValueError:
            raise TransferkitError(f"unfreeze must be a number of top stages or 'all', got {value!r}") from None
    if not 0 <= int(value) <= n_stages:
        raise TransferkitError(f"unfreeze must be between 0 and {n_stages} (the model's stages) or 'all', got {value}")
    return int(value)


class StandardisedLinear(torch.nn.Module):
    """Logits of the probe's logistic regression: its feature scaling (fixed), trainable weights.

    ``scaling`` is the one the probe chose (:mod:`transferkit.heads.scaling`): "standardise" and "none"
    are ``(f - mean) / scale``; "l2" and "sqrt-l2" first normalise each row (after a signed square root
    for "sqrt-l2"), as the head does in NumPy."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 scaling: str = "standardise"):
        super().__init__()
        self.scaling = scaling
        self.register_buffer("mean", torch.tensor(np.asarray(mean, np.float32)))
        self.register_buffer("scale", torch.tensor(np.asarray(scale, np.float32)))
        self.weight = torch.nn.Parameter(torch.as_tensor(np.array(coef, np.float32)))
        self.bias = torch.nn.Parameter(torch.as_tensor(np.array(intercept, np.float32)))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f = f.float()
        if self.scaling == "sqrt-l2":  # clamped: the square root's gradient is infinite at 0
            f = torch.sign(f) * torch.sqrt(f.abs().clamp_min(1e-12))
        if self.scaling in ("l2", "sqrt-l2"):
            f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return torch.nn.functional.linear((f - self.mean) / self.scale, self.weight, self.bias)


class TunableNet(torch.nn.Module):
    """``net`` (a timm EfficientNet) cut into ``lower`` and ``upper`` below its top ``unfreeze`` stages
    (an int, or "all": nothing is frozen)."""

    def __init__(self, net, unfreeze: int | str, bn: str = "frozen"):
        super().__init__()
        n_stages = stages(net)
        if not n_stages:
            raise TransferkitError(f"{type(net).__name__}: fine-tuning needs an EfficientNet-style network "
                                   "(efficientnet_lite0/1/2 or a timm EfficientNet such as timm:efficientnet_b0)")
        if bn not in BN_MODES:
            raise TransferkitError(f"unknown BatchNorm mode {bn!r}; choose from {', '.join(BN_MODES)}")
        n_top = parse_unfreeze(unfreeze, n_stages)
        self.net, self.bn = net, bn
        self.all = n_top > n_stages
        self.cut = 0 if self.all else n_stages - n_top  # index of the first trainable stage
        for p in net.parameters():
            p.requires_grad_(False)
        for m in self.upper_modules():
            for p in m.parameters():
                p.requires_grad_(True)
        self.head: StandardisedLinear | None = None

    def upper_modules(self) -> list[torch.nn.Module]:
        net = self.net
        mods = [net.conv_stem, net.bn1] if self.all else []
        return mods + list(net.blocks[self.cut:]) + [net.conv_head, net.bn2]

    def train_mode(self) -> None:
        """Eval mode everywhere (frozen statistics, no dropout); BatchNorm of the upper part in train
        mode only with ``bn="train"``."""
        self.eval()
        if self.bn == "train":
            for m in self.upper_modules():
                for sub in m.modules():
                    if isinstance(sub, torch.nn.modules.batchnorm._BatchNorm):
                        sub.train()

    def lower(self, x: torch.Tensor) -> torch.Tensor:
        if self.all:
            return x
        net = self.net
        with torch.no_grad():
            return net.blocks[: self.cut](net.bn1(net.conv_stem(x)))

    def upper(self, h: torch.Tensor) -> torch.Tensor:
        """Pooled features from the lower part's output (the backbone's pre-logits)."""
        net = self.net
        if self.all:
            h = net.bn1(net.conv_stem(h))
            h = net.blocks(h)
        else:
            h = net.blocks[self.cut:](h)
        return net.forward_head(net.bn2(net.conv_head(h)), pre_logits=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Logits from the lower part's output."""
        return self.head(self.upper(h))

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What training changes: the upper part (weights and BatchNorm buffers) and the head."""
        out = {}
        for i, m in enumerate(self.upper_modules()):
            for k, v in m.state_dict().items():
                out[f"upper.{i}.{k}"] = v
        for k, v in self.head.state_dict().items():
            out[f"head.{k}"] = v
        return out

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        for i, m in enumerate(self.upper_modules()):
            prefix = f"upper.{i}."
            m.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
        self.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")}, strict=True)

    def param_groups(self, lr: float, backbone_lr: float, weight_decay: float) -> list[dict]:
        backbone = [p for m in self.upper_modules() for p in m.parameters() if p.requires_grad]
        return [{"params": backbone, "lr": backbone_lr, "base_lr": backbone_lr, "weight_decay": weight_decay},
                {"params": list(self.head.parameters()), "lr": lr, "base_lr": lr, "weight_decay": 0.0}]


# -- the fine-tuned backbone in a model file ------------------------------------------------------
def net_state_arrays(net) -> dict[str, np.ndarray]:
    """The whole network's state (classifier included, so it loads strictly) as float32/int64 arrays."""
    return {k: v.detach().cpu().contiguous().numpy() for k, v in net.state_dict().items()}
