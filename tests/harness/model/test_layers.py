"""Matrix resampling equals F.interpolate / F.adaptive_avg_pool2d; the sine embedding's layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.model.layers import Resample, sine_embedding_2d

SIZES = [((8, 60), (68, 480)), ((8, 8), (64, 64)), ((2, 2), (4, 4)), ((16, 16), (64, 64)), ((9, 60), (270, 1920)),
         ((5, 7), (3, 11)), ((64, 64), (256, 256))]
POOLS = [((68, 480), (8, 60)), ((9, 60), (8, 60)), ((17, 120), (8, 60)), ((64, 64), (8, 8)), ((8, 8), (8, 8)),
         ((35, 23), (6, 5))]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("size_in", "size_out"), SIZES)
def test_bilinear_equals_interpolate(size_in, size_out, channels_last):
    x = torch.randn(2, 3, *size_in, dtype=torch.float64).float()
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    ref = F.interpolate(x, size=size_out, mode="bilinear", align_corners=False)
    out = Resample(size_in, size_out, "bilinear")(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("size_in", "size_out"), POOLS)
def test_avg_equals_adaptive_pool(size_in, size_out, channels_last):
    x = torch.randn(2, 4, *size_in)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    ref = F.adaptive_avg_pool2d(x, size_out)
    out = Resample(size_in, size_out, "avg")(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_resample_gradient_equals_interpolate():
    x = torch.randn(2, 3, 8, 12, requires_grad=True)
    g = torch.randn(2, 3, 32, 48)
    (F.interpolate(x, size=(32, 48), mode="bilinear", align_corners=False) * g).sum().backward()
    ref = x.grad.clone()
    x.grad = None
    (Resample((8, 12), (32, 48), "bilinear")(x) * g).sum().backward()
    torch.testing.assert_close(x.grad, ref, rtol=1e-5, atol=1e-5)


def test_resample_rejects_other_sizes():
    with pytest.raises(ValueError, match="expected input"):
        Resample((8, 8), (16, 16), "bilinear")(torch.zeros(1, 1, 9, 8))


def test_sine_embedding_layout():
    e = sine_embedding_2d(3, 4, 8)
    assert e.shape == (12, 8)
    # the first half depends on the row only, the second on the column only
    grid = e.view(3, 4, 8)
    assert torch.allclose(grid[:, 0, :4], grid[:, 3, :4])
    assert torch.allclose(grid[0, :, 4:], grid[2, :, 4:])
    assert not torch.allclose(grid[0, 0, :4], grid[1, 0, :4])
