"""One 31-band model restores cubes of any band count (spectral resampling and windowing)."""
from __future__ import annotations

import pytest
import torch

from damp_engine.errors import DampInputError
from damp_engine.model import DAMP, get_preset
from damp_engine.spectral import band_interpolation, restore_cube, view_prompts, window_starts, window_weights


@pytest.fixture(scope="module")
def tiny() -> DAMP:
    torch.manual_seed(0)
    return DAMP(get_preset("tiny")).eval()


@pytest.fixture(scope="module")
def identity() -> DAMP:
    """A tiny network whose last conv is zero and whose skip gate is wide open: net(x) = 0 + 1·x."""
    torch.manual_seed(0)
    net = DAMP(get_preset("tiny")).eval()
    with torch.no_grad():
        net.output.weight.zero_()
        net.output.bias.zero_()
        net.skip_gate.linear.bias.fill_(40.0)  # sigmoid(40) is 1 in float32
    return net


def cube(bands: int, batch: int = 1, side: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(bands)
    return torch.rand(batch, bands, side, side, generator=g)


@pytest.mark.parametrize("bands", [10, 31, 198, 224])
def test_any_band_count_keeps_the_shape(tiny, bands):
    with torch.no_grad():
        y = restore_cube(tiny, cube(bands))
    assert y.shape == (1, bands, 32, 32)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("bands", [10, 31, 224])
def test_identity_network_gives_back_the_input(identity, bands):
    x = cube(bands, batch=2)
    with torch.no_grad():
        y = restore_cube(identity, x)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_windows_cover_every_band_with_the_last_one_aligned():
    for bands in (32, 46, 100, 224, 250):
        starts = window_starts(bands, 31)
        covered = set().union(*(range(s, s + 31) for s in starts))
        assert covered == set(range(bands))
        assert starts[-1] == bands - 31 and starts[0] == 0
        assert all(0 < b - a <= 15 for a, b in zip(starts, starts[1:]))


def test_blending_weights_taper_but_stay_positive():
    w = window_weights(31)
    assert (w > 0).all()
    assert w[15] == w.max() and w[0] < 0.1 * w[15]


def test_band_resampling_keeps_end_bands_and_inverts_exactly():
    up = band_interpolation(10, 31)
    assert up[0, 0] == 1 and up[-1, -1] == 1
    torch.testing.assert_close(up.sum(1), torch.ones(31, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.pinv(up) @ up, torch.eye(10, dtype=torch.float64))


def test_windowed_trace_averages_gates_per_sample(tiny):
    with torch.no_grad():
        y, trace = restore_cube(tiny, cube(100, batch=2), return_trace=True)
    n_blocks, experts = sum(tiny.preset.dec_blocks), tiny.preset.experts
    assert y.shape == (2, 100, 32, 32)
    assert trace.gates.shape == (2, n_blocks, experts)
    torch.testing.assert_close(trace.gates.sum(-1), torch.ones(2, n_blocks))


def test_fewer_than_three_bands_is_refused(tiny):
    with pytest.raises(DampInputError, match="at least 3"):
        restore_cube(tiny, cube(2))


@pytest.mark.parametrize("bands, views", [(10, 1), (31, 1), (100, len(window_starts(100, 31)))])
def test_view_prompts_have_one_row_per_network_view(bands, views):
    prompts = view_prompts(cube(bands, batch=2), 31)
    assert prompts.shape == (2, views, 6) and torch.isfinite(prompts).all()


@pytest.mark.parametrize("bands", [10, 31, 100])
def test_given_prompts_route_the_views(tiny, bands):
    x = cube(bands, batch=2)
    with torch.no_grad():
        own = restore_cube(tiny, x)
        given = restore_cube(tiny, x, prompts=view_prompts(x, 31))
        other = restore_cube(tiny, x, prompts=view_prompts(x, 31) * 3.0)
    torch.testing.assert_close(given, own)
    assert not torch.allclose(other, own, atol=1e-4)
