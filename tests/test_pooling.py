"""Pooling ops on hand-made tensors: every pool against its definition, and the one-line refusals."""

import pytest
import torch

from transferkit.backbones.pooling import effective_pool, pool_tensor
from transferkit.errors import TransferkitError


def test_spatial_pools_match_their_definitions():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2) + 1
    assert torch.equal(pool_tensor(x, "avg"), x.mean((2, 3)))
    assert torch.equal(pool_tensor(x, "max"), x[:, :, 1, 1])
    assert torch.equal(pool_tensor(x, "avgmax"), torch.cat([x.mean((2, 3)), x[:, :, 1, 1]], 1))
    assert torch.equal(pool_tensor(x, "flatten"), x.reshape(2, 12))
    gem = pool_tensor(x, "gem")
    assert torch.allclose(gem, (x**3).mean((2, 3)) ** (1 / 3))
    assert (gem >= pool_tensor(x, "avg")).all() and (gem <= pool_tensor(x, "max")).all()
    # NHWC maps (timm's Swin) are read as such
    assert torch.equal(pool_tensor(x.permute(0, 2, 3, 1), "avgmax", nhwc=True), pool_tensor(x, "avgmax"))


def test_token_pools_skip_prefix_tokens():
    x = torch.randn(2, 1 + 4, 8)  # class token + 4 patches
    assert torch.equal(pool_tensor(x, "cls", prefix=1), x[:, 0])
    assert torch.allclose(pool_tensor(x, "mean", prefix=1), x[:, 1:].mean(1))
    assert torch.allclose(pool_tensor(x, "cls+mean", prefix=1), torch.cat([x[:, 0], x[:, 1:].mean(1)], 1))
    assert torch.equal(pool_tensor(x, "max", prefix=1), x[:, 1:].amax(1))
    assert pool_tensor(x, "flatten", prefix=1).shape == (2, 40)


@pytest.mark.parametrize("pool, ndim, prefix, expected", [
    (None, 4, 0, "avg"), ("mean", 4, 0, "avg"), ("gem", 4, 0, "gem"),
    (None, 3, 1, "cls"), (None, 3, 0, "mean"), ("avg", 3, 1, "mean"),
    ("max", 2, 0, "none"), (None, 2, 0, "none"),
])
def test_effective_pool(pool, ndim, prefix, expected):
    assert effective_pool(pool, ndim, prefix, "x") == expected


@pytest.mark.parametrize("pool, ndim, prefix, words", [
    ("cls", 4, 0, "spatial map"), ("gem", 3, 1, "tokens"), ("cls", 3, 0, "no class token"),
    ("median", 4, 0, "unknown pooling"), (None, 5, 0, "5-D"),
])
def test_pool_refusals_are_one_line(pool, ndim, prefix, words):
    with pytest.raises(TransferkitError, match=words) as exc:
        effective_pool(pool, ndim, prefix, "blocks.3")
    assert "\n" not in str(exc.value)


def test_a_bad_pool_names_the_argument_in_python_and_the_flag_on_the_command_line():
    from transferkit.backbones.pooling import effective_pool
    from transferkit.cli._flags import worded
    from transferkit.errors import AdvisedError

    with pytest.raises(AdvisedError) as caught:
        effective_pool("median", 4, 0, "x")
    assert str(caught.value).startswith("pool='median': unknown pooling; choose from avg")
    assert worded(caught.value).startswith("--pool median: unknown pooling; choose from avg")
