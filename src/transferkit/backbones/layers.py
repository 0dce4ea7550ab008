"""Cutting a network at named layers: probing it, resolving the layers a user asks for, and the module that
returns their pooled outputs, several layers in one forward pass.

Layers are the names of ``net.named_modules()`` (what ``print(net)`` shows, e.g. ``layer3.1`` or
``features.29``), taken with forward hooks, which work on any PyTorch model (no graph tracing to fail),
plus two pseudo-layers:
  pre_logits        the vector the model's classifier sees (its own pooling and head layers included)
  forward_features  the model's unpooled final features (timm's ``forward_features``; for torchvision
                    models the input of ``avgpool``, or the output of ``features`` / ``encoder``)
A module that runs more than once per forward pass (a shared activation, say) has no single output and
is refused. Once every requested layer has been produced the forward pass stops, so early layers of a
big network cost only the layers up to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import torch

from ..errors import AdvisedError, TransferkitError, first_line
from .loaded import LoadedNet
from .pooling import POOLS, effective_pool, pool_tensor, unknown_pool


class _Enough(Exception):
    """Raised by a hook once every requested output has been captured."""


@dataclass
class Probe:
    """One forward pass of a dummy image: every module's output shape and call count, in named order."""

    shapes: dict[str, tuple] = field(default_factory=dict)  # module name -> output shape without batch
    types: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # modules in the order they finished
    pre_logits: tuple = ()
    forward_features: tuple = ()
    classifier: str | None = None  # module whose input is the pre-logits (torchvision)


def _shape(out) -> tuple | None:
    return tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None


def probe(loaded: LoadedNet, input_size: tuple[int, int]) -> Probe:
    net, p = loaded.net, Probe()
    names = {m: n for n, m in net.named_modules() if n}
    inputs: dict[str, tuple] = {}

    def hook(module, args, out):
        name = names[module]
        p.calls[name] = p.calls.get(name, 0) + 1
        p.types[name] = type(module).__name__
        if p.calls[name] == 1:
            shape = _shape(out)
            if shape is not None:
                p.shapes[name] = shape
            if args and isinstance(args[0], torch.Tensor):
                inputs[name] = tuple(args[0].shape[1:])
        p.order.append(name)

    handles = [m.register_forward_hook(hook) for m in names]
    x = torch.zeros(1, 3, *input_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small image: more threads only add synchronisation (10x slower on busy CPUs)
    try:
        with torch.inference_mode():
            if loaded.family == "timm":
                feats = net.forward_features(x)
                p.forward_features = _shape(feats) or ()
                pl = net.forward_head(feats, pre_logits=True)
                p.pre_logits = _shape(pl) or ()
                try:
                    net.get_classifier()(pl)
                except Exception:  # a classifier with a fancier signature: its own layers are rarely wanted
                    pass
            else:
                net(x)
    except RuntimeError as exc:
        raise AdvisedError(
            "the network fails on a {size} input ({why}); try another {o[image_size]}",
            size=f"{input_size[0]}x{input_size[1]}", why=first_line(exc, 160),
        ) from None
    finally:
        torch.set_num_threads(threads)
        for h in handles:
            h.remove()
    if loaded.family == "torchvision":
        heads = [n for n in p.order if p.types.get(n) in ("Linear", "Conv2d")]
        if heads:
            p.classifier = heads[-1]
            p.pre_logits = inputs.get(p.classifier, ())
        if loaded.final_map:
            module, how = loaded.final_map
            p.forward_features = inputs.get(module, ()) if how == "input" else p.shapes.get(module, ())
    return p


@dataclass
class LayerChoice:
    name: str  # as recorded: a module name or a pseudo-layer
    pool: str  # as recorded: the pooling applied, or the model's own for pre_logits
    op: str  # the pooling op run by pool_tensor ("none" for vectors)
    shape: tuple  # unpooled output shape, without the batch
    dim: int  # pooled size
    where: tuple[str | None, str]  # (module, "input"|"output"), or (None, pseudo) for timm's pseudo-layers

    def info(self) -> dict:
        return {"name": self.name, "pool": self.pool, "dim": self.dim, "shape": list(self.shape)}


def pooled_dim(shape: tuple, op: str, nhwc: bool) -> int:
    if op in ("none", "flatten"):
        return int(math.prod(shape))
    width = shape[-1] if (len(shape) == 3 and nhwc) or len(shape) == 2 else shape[0]
    return int(width) * (2 if op in ("avgmax", "cls+mean") else 1)


def choose_layers(loaded: LoadedNet, p: Probe, layer, pool, model_name: str) -> list[LayerChoice]:
    """Resolve ``layer`` (None, a name or a list) and ``pool`` (None, a name, or one per layer)."""
    implicit = layer is None
    names = ["pre_logits"] if implicit else ([layer] if isinstance(layer, str) else list(layer))
    if not names:
        raise TransferkitError(f"{model_name}: no layer given")
    if len(set(names)) != len(names):
        raise TransferkitError(f"{model_name}: a layer is named twice in {names}")
    pools = list(pool) if isinstance(pool, (list, tuple)) else [pool] * len(names)
    if len(pools) != len(names):
        raise TransferkitError(f"{model_name}: {len(pools)} pools for {len(names)} layers")
    choices = []
    for name, want in zip(names, pools):
        own = name == "pre_logits" and want == loaded.own_pool
        if want is not None and want not in POOLS + ("none",) and not own:
            raise unknown_pool(want)
        if (
            name == "pre_logits"
            and want not in (None, loaded.own_pool)
            and len(names) > 1
            and pool is not None
            and isinstance(pool, str)
        ):
            want = None  # one --pool for several layers: pre_logits keeps the model's own pooling
        if name == "pre_logits" and want not in (None, loaded.own_pool):
            if not implicit:
                raise AdvisedError(
                    "{model}: pre_logits is pooled by the model itself ({own}); for {o[pool=@want]} "
                    "name the unpooled map instead, e.g. {o[layer=forward_features]}",
                    model=model_name, own=loaded.own_pool, want=want,
                )
            name = "forward_features"
        choices.append(_choice(loaded, p, name, want, model_name))
    return choices


def _choice(loaded: LoadedNet, p: Probe, name: str, want: str | None, model_name: str) -> LayerChoice:
    nhwc = loaded.nhwc
    if name == "pre_logits":
        shape = p.pre_logits
        where = (None, "pre_logits") if loaded.family == "timm" else (p.classifier, "input")
        if not shape or where[0] is None and loaded.family != "timm":
            raise AdvisedError(
                "{model}: cannot find its classifier to take the pre-logits from; name a {o[layer]}", model=model_name
            )
        own = loaded.own_pool if loaded.own_pool in POOLS else None
        op = "none" if len(shape) == 1 else effective_pool(own, len(shape) + 1, loaded.prefix_tokens, name)
        return LayerChoice(name, loaded.own_pool, op, shape, pooled_dim(shape, op, nhwc and len(shape) == 3), where)
    if name == "forward_features":
        shape = p.forward_features
        if loaded.family == "timm":
            where = (None, "forward_features")
        elif loaded.final_map:
            where = loaded.final_map
        else:
            raise AdvisedError(  # `transferkit models --layers` is a command of its own, for any front door
                "{model}: has no known final feature map; name a {o[layer]} (see `transferkit models --layers`)",
                model=model_name,
            )
    else:
        if name not in p.calls:
            modules = dict(loaded.net.named_modules())
            why = "does not run in the forward pass" if name in modules else "no such layer"
            raise TransferkitError(
                f"{model_name}: layer {name!r}: {why}; list the layers with `transferkit models --layers {model_name}`"
            )
        if p.calls[name] > 1:
            parent = name.rsplit(".", 1)[0] if "." in name else None
            hint = f"; take its parent {parent!r} or another layer" if parent else ""
            raise TransferkitError(
                f"{model_name}: layer {name!r} runs {p.calls[name]} times per forward pass (a shared module){hint}"
            )
        if name not in p.shapes:
            raise TransferkitError(
                f"{model_name}: layer {name!r} does not output a single tensor; choose another layer"
            )
        shape, where = p.shapes[name], (name, "output")
    op = effective_pool(want, len(shape) + 1, loaded.prefix_tokens, name)
    return LayerChoice(name, op, op, shape, pooled_dim(shape, op, nhwc and len(shape) == 3), where)


class LayerTap(torch.nn.Module):
    """images (N, 3, H, W) -> the chosen layers' pooled outputs, concatenated in order: (N, sum of dims).

    Each output is pooled inside its hook, at once: a later in-place operation (``ReLU(inplace=True)``,
    a residual ``+=``) would otherwise change the captured tensor before it is read."""

    def __init__(self, loaded: LoadedNet, choices: list[LayerChoice]):
        super().__init__()
        self.net = loaded.net
        self.family = loaded.family
        self.prefix = loaded.prefix_tokens
        self.nhwc = loaded.nhwc
        self.choices = choices
        self._by_key: dict[tuple, list[int]] = {}
        for i, c in enumerate(choices):
            self._by_key.setdefault(c.where, []).append(i)
        self._hooked = {i for i, c in enumerate(choices) if c.where[0] is not None}
        self._pseudo = {c.where[1] for c in choices if c.where[0] is None}
        self._store: dict[int, torch.Tensor] = {}
        self._active = False  # the hooks stay on the network but act only inside forward()
        for key in self._by_key:
            module_name, how = key
            if module_name is None:
                continue
            module = self.net.get_submodule(module_name)
            if how == "input":
                module.register_forward_pre_hook(partial(self._on_input, key))
            else:
                module.register_forward_hook(partial(self._on_output, key))

    def _take(self, key, value: torch.Tensor) -> None:
        for i in self._by_key.get(key, ()):
            c = self.choices[i]
            pooled = pool_tensor(value, c.op, self.prefix, self.nhwc and value.ndim == 4)
            # flatten/none can return a view of the layer's output: copy it before the network moves on
            self._store[i] = pooled.clone() if c.op in ("flatten", "none") else pooled

    def _on_input(self, key, module, args):
        if self._active:
            self._take(key, args[0])
            self._maybe_stop()

    def _on_output(self, key, module, args, out):
        if self._active:
            self._take(key, out)
            self._maybe_stop()

    def _maybe_stop(self) -> None:
        if not self._pseudo and self._hooked.issubset(self._store) and not _tracing():
            raise _Enough

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._store, self._active = {}, True
        try:
            if self.family == "timm":
                feats = self.net.forward_features(x)
                self._take((None, "forward_features"), feats)
                if "pre_logits" in self._pseudo or not self._hooked.issubset(self._store):
                    pl = self.net.forward_head(feats, pre_logits=True)
                    self._take((None, "pre_logits"), pl)
                    if not self._hooked.issubset(self._store):
                        self.net.get_classifier()(pl)
            else:
                self.net(x)
        except _Enough:
            pass
        finally:
            self._active = False
        store, self._store = self._store, {}
        out = [store[i] for i in range(len(self.choices))]
        return out[0] if len(out) == 1 else torch.cat(out, 1)


def _tracing() -> bool:
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    try:
        return bool(torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export())
    except AttributeError:
        return False


def layer_table(loaded: LoadedNet, p: Probe, max_depth: int | None = None) -> list[dict]:
    """Rows for `transferkit models --layers`: pseudo-layers first, then every module that outputs a tensor."""
    rows = []
    for pseudo, shape in (("pre_logits", p.pre_logits), ("forward_features", p.forward_features)):
        if shape:
            rows.append(
                {
                    "name": pseudo,
                    "type": "(pseudo-layer)",
                    "shape": shape,
                    "calls": 1,
                    "dim": _default_dim(loaded, pseudo, shape),
                }
            )
    for name, _ in loaded.net.named_modules():
        if not name or name not in p.calls:
            continue
        if max_depth is not None and name.count(".") + 1 > max_depth:
            continue
        shape = p.shapes.get(name)
        rows.append(
            {
                "name": name,
                "type": p.types[name],
                "shape": shape,
                "calls": p.calls[name],
                "dim": _default_dim(loaded, name, shape) if shape and p.calls[name] == 1 else None,
            }
        )
    return rows


def _default_dim(loaded: LoadedNet, name: str, shape: tuple) -> int | None:
    try:
        if name == "pre_logits":
            return pooled_dim(shape, "none" if len(shape) == 1 else "avg", False)
        op = effective_pool(None, len(shape) + 1, loaded.prefix_tokens, name)
        return pooled_dim(shape, op, loaded.nhwc and len(shape) == 3)
    except TransferkitError:
        return None
