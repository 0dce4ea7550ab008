"""Describing a backbone's layers for `transferkit models --layers` (random weights: shapes do not
depend on the weights, so any model can be listed offline)."""

from __future__ import annotations

from .layers import layer_table, probe
from .registry import build_net, default_preprocess, resolve_preprocess


def list_layers(name: str, image_size=None, max_depth: int | None = None) -> dict:
    pp = resolve_preprocess(default_preprocess(name)[0], image_size)
    loaded = build_net(name, "random", pp.input_size)
    p = probe(loaded, pp.input_size)
    rows = layer_table(loaded, p, max_depth)
    for row in rows:
        row["shape"] = list(row["shape"]) if row["shape"] else None
    return {"model": name, "input_size": list(pp.input_size), "own_pool": loaded.own_pool, "layers": rows}
