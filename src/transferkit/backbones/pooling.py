"""Reduce a layer's output to one vector per image.

Spatial maps ``(N, C, H, W)``:
  avg      mean over H x W                                   -> C
  max      max over H x W                                    -> C
  avgmax   [avg, max] concatenated                           -> 2C
  gem      generalised mean, (mean(clamp(x, 1e-6) ** 3)) ** (1/3) (Radenović et al.; p = 3) -> C
  flatten  every value, in PyTorch's (C, H, W) order         -> C*H*W
Token sequences ``(N, T, D)`` (vision transformers; the first ``prefix`` tokens are class/register tokens):
  cls      the class token (token 0)                         -> D
  mean     mean of the patch tokens (prefix tokens excluded) -> D   (``avg`` means the same here)
  cls+mean [cls, mean] concatenated                          -> 2D
  max      max over the patch tokens                         -> D
  avgmax   [mean, max] of the patch tokens                   -> 2D
  flatten  every token                                       -> T*D
Vectors ``(N, D)`` (e.g. a fully connected layer) are already one vector per image: they pass through
unchanged whatever the pool asked for, and are recorded with pool ``none``.
"""

from __future__ import annotations

import torch

from ..errors import AdvisedError, TransferkitError

POOLS = ("avg", "max", "avgmax", "gem", "flatten", "cls", "mean", "cls+mean")
GEM_P = 3.0
_TOKEN_ONLY = ("cls", "cls+mean")


def unknown_pool(pool) -> AdvisedError:
    return AdvisedError("{o[pool=@pool]}: unknown pooling; choose from {choices}", pool=pool, choices=", ".join(POOLS))


def effective_pool(pool: str | None, ndim: int, prefix: int, layer: str) -> str:
    """The pool actually applied to a layer with ``ndim``-D output (``none`` for vectors)."""
    if pool is not None and pool not in POOLS + ("none",):
        raise unknown_pool(pool)
    if ndim == 2:
        return "none"
    if ndim == 4:
        if pool is None or pool == "mean":
            return "avg"
        if pool in _TOKEN_ONLY:
            raise AdvisedError(
                "{o[pool=@pool]}: layer {layer!r} outputs a spatial map (N, C, H, W), not a token sequence; "
                "use avg, max, avgmax, gem or flatten", pool=pool, layer=layer
            )
        if pool == "none":
            raise TransferkitError(
                f"layer {layer!r} outputs a spatial map: it needs a pool (avg, max, avgmax, gem, flatten)"
            )
        return pool
    if ndim == 3:
        if pool is None:
            return "cls" if prefix > 0 else "mean"
        if pool == "avg":
            return "mean"
        if pool in _TOKEN_ONLY and prefix == 0:
            raise AdvisedError(
                "{o[pool=@pool]}: layer {layer!r} has no class token; use mean, max, avgmax or flatten",
                pool=pool, layer=layer,
            )
        if pool == "gem":
            raise AdvisedError(
                "{o[pool=gem]}: layer {layer!r} outputs tokens, which can be negative; use mean, cls or max",
                layer=layer,
            )
        if pool == "none":
            raise TransferkitError(
                f"layer {layer!r} outputs a token sequence: it needs a pool (cls, mean, cls+mean, max, flatten)"
            )
        return pool
    raise TransferkitError(
        f"layer {layer!r} outputs a {ndim}-D tensor; only (N, D), (N, T, D) and (N, C, H, W) can be pooled"
    )


def pool_tensor(x: torch.Tensor, pool: str, prefix: int = 0, nhwc: bool = False) -> torch.Tensor:
    """Apply an :func:`effective_pool` result to ``x``; returns ``(N, D)``."""
    if pool == "none":
        return x.flatten(1)
    if x.ndim == 4:
        if nhwc:
            x = x.permute(0, 3, 1, 2)
        if pool == "avg":
            return x.mean((2, 3))
        if pool == "max":
            return x.amax((2, 3))
        if pool == "avgmax":
            return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)
        if pool == "gem":
            return x.clamp(min=1e-6).pow(GEM_P).mean((2, 3)).pow(1.0 / GEM_P)
        if pool == "flatten":
            return x.flatten(1)
    elif x.ndim == 3:
        patches = x[:, prefix:]
        if pool == "cls":
            return x[:, 0]
        if pool == "mean":
            return patches.mean(1)
        if pool == "cls+mean":
            return torch.cat([x[:, 0], patches.mean(1)], 1)
        if pool == "max":
            return patches.amax(1)
        if pool == "avgmax":
            return torch.cat([patches.mean(1), patches.amax(1)], 1)
        if pool == "flatten":
            return x.flatten(1)
    raise ValueError(f"pool {pool!r} does not apply to a tensor of shape {tuple(x.shape)}")
