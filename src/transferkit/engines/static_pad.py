"""Turn TensorFlow-style "same" padding, computed from the input shape at run time, into constants.

timm's ``tf_*`` models (the EfficientNet-Lite backbones among them) pad with ``Conv2dSame``,
``MaxPool2dSame`` and ``AvgPool2dSame``, which work out the padding from ``x.shape`` on every call.
Exported to ONNX as is, that is ~500 Shape/Gather/Div/Ceil/Pad nodes evaluated per batch, and ONNX
Runtime runs Lite0 about half as fast as with constant padding. For a fixed input size the padding of
every layer is a constant, so :func:`freeze_same_padding` records each layer's input size on one probe
forward pass and swaps the layer for ``ConstantPad2d`` + the plain layer, with identical numbers.
"""

from __future__ import annotations

import copy
from functools import partial

import torch
from torch import nn


def _same_pads(size: tuple[int, int], kernel, stride, dilation) -> tuple[int, int, int, int]:
    pads = []
    for x, k, s, d in zip(size, kernel, stride, dilation):
        total = max((-(-x // s) - 1) * s + (k - 1) * d + 1 - x, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return left, right, top, bottom  # F.pad order: last dim first


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _frozen(layer: nn.Module, size: tuple[int, int]) -> nn.Module | None:
    """The constant-padding equivalent of ``layer`` for inputs of spatial ``size``, or None."""
    from timm.layers.conv2d_same import Conv2dSame, Conv2dSameExport
    from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame

    if isinstance(layer, (Conv2dSame, Conv2dSameExport)):
        pads = _same_pads(size, layer.kernel_size, layer.stride, layer.dilation)
        conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, 0,
                         layer.dilation, layer.groups, layer.bias is not None)
        conv.weight, conv.bias = layer.weight, layer.bias  # share, do not copy
        return nn.Sequential(nn.ConstantPad2d(pads, 0.0), conv) if any(pads) else conv
    if isinstance(layer, MaxPool2dSame):
        k, s, d = _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.dilation)
        pads = _same_pads(size, k, s, d)
        pool = nn.MaxPool2d(k, s, 0, d, ceil_mode=layer.ceil_mode)
        return nn.Sequential(nn.ConstantPad2d(pads, float("-inf")), pool) if any(pads) else pool
    if isinstance(layer, AvgPool2dSame):
        k, s = _pair(layer.kernel_size), _pair(layer.stride)
        pads = _same_pads(size, k, s, (1, 1))
        pool = nn.AvgPool2d(k, s, 0, ceil_mode=layer.ceil_mode, count_include_pad=layer.count_include_pad)
        return nn.Sequential(nn.ConstantPad2d(pads, 0.0), pool) if any(pads) else pool
    return None


def _record_size(sizes: dict, name: str, _module, inputs) -> None:
    sizes.setdefault(name, tuple(int(v) for v in inputs[0].shape[-2:]))  # returns None: input unchanged


def freeze_same_padding(module: nn.Module, input_size: tuple[int, int]) -> tuple[nn.Module, int]:
    """A copy of ``module`` whose dynamic "same" padding is constant for ``input_size`` (H, W) inputs.

    Returns ``(module, number of layers replaced)``; the copy shares nothing mutable with the original
    and computes the same numbers for inputs of that size (and only that size).
    """
    module = copy.deepcopy(module).eval()
    sizes: dict[str, tuple[int, int]] = {}
    hooks = []
    for name, sub in module.named_modules():
        if name and _frozen_type(sub):
            hooks.append(sub.register_forward_pre_hook(partial(_record_size, sizes, name)))
    if not hooks:
        return module, 0
    try:
        with torch.inference_mode():
            param = next(module.parameters(), None)
            module(torch.zeros(1, 3, *input_size, dtype=param.dtype if param is not None else torch.float32))
    finally:
        for h in hooks:
            h.remove()
    replaced = 0
    for name, size in sizes.items():
        new = _frozen(module.get_submodule(name), size)
        if new is None:
            continue
        parent_name, _, attr = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, attr, new)
        replaced += 1
    return module, replaced


def _frozen_type(layer: nn.Module) -> bool:
    try:
        from timm.layers.conv2d_same import Conv2dSame, Conv2dSameExport
        from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
    except ImportError:  # pragma: no cover - timm is a dependency
        return False
    return isinstance(layer, (Conv2dSame, Conv2dSameExport, MaxPool2dSame, AvgPool2dSame))
