"""The DAMP network over eigen-images: shapes, determinism, bounded receptive field, routing and training
signals (DESIGN §4, §4a)."""
from __future__ import annotations

import pytest
import torch

from damp_engine.errors import DampInputError
from damp_engine.model import DAMP, PRESETS, Preset, count_parameters, get_preset, model_info, prompt_features
from damp_engine.model.attention import WindowAttention
from damp_engine.model.experts import initial_alphas


@pytest.fixture(scope="module")
def tiny() -> DAMP:
    torch.manual_seed(0)
    return DAMP(get_preset("tiny")).eval()


def cube(batch: int = 1, rows: int = 32, cols: int = 32, channels: int = 33, seed: int = 0) -> torch.Tensor:
    """A network input: 2K + 1 = 33 channels for the tiny preset (z, z0, gap mask)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, rows, cols, generator=g)


def prompts(batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 6, generator=g) + 0.01


def test_output_keeps_odd_sizes(tiny):
    with torch.no_grad():
        out = tiny(cube(2, 37, 45), prompts(2))
    assert out.components.shape == (2, 16, 37, 45)
    assert torch.isfinite(out.components).all()


def test_tiny_inputs_are_padded_and_cropped(tiny):
    with torch.no_grad():
        y8 = tiny(cube(1, 8, 8), prompts()).components
        y3 = tiny(cube(1, 3, 5), prompts()).components
    assert y8.shape == (1, 16, 8, 8) and y3.shape == (1, 16, 3, 5)
    assert torch.isfinite(y8).all() and torch.isfinite(y3).all()


def test_untrained_network_returns_the_closed_form_estimate():
    net = DAMP(get_preset("tiny")).eval()
    x = cube(2)
    with torch.no_grad():
        out = net(x, prompts(2))
    torch.testing.assert_close(out.components, x[:, 16:32])  # last conv starts at zero: z0 exactly


def test_eval_is_deterministic(tiny):
    x, p = cube(2), prompts(2)
    with torch.no_grad():
        assert torch.equal(tiny(x, p).components, tiny(x, p).components)


def _trained_like(seed: int = 0) -> DAMP:
    """A tiny network with random (non-zero) output weights, so its output depends on its input."""
    torch.manual_seed(seed)
    net = DAMP(get_preset("tiny")).eval()
    with torch.no_grad():
        net.output.weight.normal_(std=0.05)
    return net


def test_sample_output_does_not_depend_on_batch():
    net = _trained_like()
    x = torch.cat([cube(1, seed=1), 0.3 * cube(1, seed=2), cube(1, seed=3) ** 3])
    p = prompts(3)
    with torch.no_grad():
        together = net(x, p).components
        alone = torch.cat([net(x[i:i + 1], p[i:i + 1]).components for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_receptive_field_is_bounded():
    """No global pooling: a change far away leaves a pixel's output alone (DESIGN §4a.6)."""
    net = _trained_like(1)
    x, p = cube(1, 128, 128), prompts()
    poked = x.clone()
    poked[..., 120:, 120:] += 3.0
    with torch.no_grad():
        change = (net(poked, p).components - net(x, p).components).abs()[0].amax(0)
    assert change[:40, :40].max() < 1e-5   # 80 px away: float round-off at most
    assert change[120:, 120:].max() > 0.1


def test_trace_records_every_decoder_block(tiny):
    p = tiny.preset
    with torch.no_grad():
        trace = tiny(cube(2), prompts(2)).trace
    n_blocks = sum(p.dec_blocks)
    assert len(trace.block_names) == n_blocks
    assert trace.gates.shape == (2, n_blocks, p.experts)
    assert trace.spatial_share.shape == (n_blocks, p.experts)
    assert trace.mean_gates().shape == (n_blocks, p.experts)
    torch.testing.assert_close(trace.gates.sum(-1), torch.ones(2, n_blocks))
    assert ((trace.gates > 0).sum(-1) == p.top_k).all()


def test_route_gives_the_routing_of_a_forward_pass(tiny):
    p = prompts(3, seed=4)
    with torch.no_grad():
        forward = tiny(cube(3), p).trace.gates
    assert torch.equal(tiny.route(p).gates, forward)


def test_experts_start_with_spread_spatial_shares(tiny):
    assert initial_alphas(4) == [4.0, 1.0, -1.0, -4.0]
    expected = torch.sigmoid(torch.tensor([4.0, 1.0, -1.0, -4.0]))
    for shares in tiny.spatial_shares():
        torch.testing.assert_close(shares, expected)
    shared = tiny.decoders[0][0].moe.shared.spatial_share
    assert shared.item() == pytest.approx(0.9)
    assert "decoders.0.0.moe.shared.alpha" not in tiny.state_dict()  # fixed, not learned


def test_routing_follows_the_prompt():
    net = _trained_like(3)
    with torch.no_grad():
        for block in (b for blocks in net.decoders for b in blocks):
            block.moe.router.from_prompt.weight.normal_(std=3.0)
        gates = net.route(torch.tensor([[0.02, 0.5, 0.002, 0.001, 0.01, 0.99], [0.4, 0.9, 0.3, 0.2, 0.5, 0.1]])).gates
    assert not torch.equal(gates[0], gates[1])  # two prompts, two routings


def test_log_features_separate_blur_from_clean_in_relative_terms():
    raw = torch.tensor([[0.2, 0.5, 0.02, 0.01, 0.05, 0.9], [0.1, 0.5, 0.02, 0.01, 0.025, 0.9]])
    features = prompt_features(raw)
    names = ["hfer", "stu", "scm", "scs", "gstd", "scc"]
    # halving HFER or GSTD moves the feature by log10(2) whatever their size
    assert features[0, names.index("hfer")] - features[1, names.index("hfer")] == pytest.approx(0.30103, abs=1e-5)
    assert features[0, names.index("gstd")] - features[1, names.index("gstd")] == pytest.approx(0.30103, abs=1e-5)
    assert features[0, names.index("stu")] == raw[0, names.index("stu")]


def test_training_gives_aux_loss_and_gradients_to_router_and_experts():
    torch.manual_seed(1)
    net = DAMP(get_preset("tiny")).train()
    with torch.no_grad():
        net.output.weight.normal_(std=0.05)
    x, p = cube(4), prompts(4)
    out = net(x, p)
    assert out.aux.ndim == 0 and out.aux.item() > 0
    ((out.components - x[:, :16]).abs().mean() + 0.01 * out.aux).backward()
    moe = net.decoders[0][0].moe
    assert moe.router.from_prompt.weight.grad.abs().sum() > 0
    assert net.embed_prompt.body[0].weight.grad.abs().sum() > 0
    used = out.trace.gates[:, 0].sum(0) > 0
    for i, expert in enumerate(moe.experts):
        if used[i]:
            assert expert.alpha.grad.abs() > 0
            assert expert.spectral.mix.weight.grad.abs().sum() > 0


def test_training_routing_is_noisy_but_eval_is_not():
    torch.manual_seed(2)
    net = DAMP(get_preset("tiny"))
    x, p = cube(1), prompts()
    with torch.no_grad():
        noisy = [net.train()(x, p).trace.gates for _ in range(8)]
        clean = [net.eval()(x, p).trace.gates for _ in range(2)]
    assert any(not torch.equal(noisy[0], g) for g in noisy[1:])
    assert torch.equal(clean[0], clean[1])


def test_prompt_normalisation_is_stored_and_used():
    net = _trained_like(5)
    x, p = cube(1), prompts()
    with torch.no_grad():
        before = net(x, p).components
        net.set_prompt_normalisation([0.1] * 6, [2.0] * 6)
        after = net(x, p).components
    assert torch.equal(net.state_dict()["dp_scale"], torch.full((6,), 2.0))
    assert not torch.equal(before, after)
    with pytest.raises(DampInputError):
        net.set_prompt_normalisation([0.0] * 6, [1.0, 0.0, 1.0, 1.0, 1.0, 1.0])


def test_wrong_channel_count_points_to_restore_cube(tiny):
    with pytest.raises(DampInputError, match="restore_cube"):
        tiny(cube(1, channels=12), prompts())


def test_shifted_windows_do_not_wrap_around_the_border():
    torch.manual_seed(0)
    attn = WindowAttention(dim=4, heads=1, window=4, shift=2).eval()
    x = torch.rand(1, 4, 8, 8)
    poked = x.clone()
    poked[..., 0, 0] += 1.0
    with torch.no_grad():
        change = (attn(poked) - attn(x)).abs().sum(1)[0]
    assert change[7, 7] == 0       # same rolled window, opposite border: masked
    assert change[1, 1] > 0        # same window region: attends


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(DampInputError, match="tiny"):
        get_preset("huge")


def test_preset_round_trips_through_a_dict():
    for preset in PRESETS.values():
        assert Preset.from_dict(preset.to_dict()) == preset


def test_inconsistent_preset_is_refused():
    with pytest.raises(DampInputError, match="heads"):
        Preset(name="bad", dim=24, enc_blocks=(1,), latent_blocks=1, dec_blocks=(1,),
               refine_blocks=1, heads=(5, 2), ffn_expansion=2.0)


def test_model_info_reports_size_and_cost():
    info = model_info("tiny")
    assert info["parameters"] == count_parameters(DAMP(get_preset("tiny")))
    assert 2e5 < info["parameters"] < 1e6  # trains on a laptop CPU
    assert info["flops_per_pixel"] > 0


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_model_info_counts_every_scalar_of_the_network(name):
    """The size `model_info` reports is the number of scalars in the network's parameters, counted
    here without the engine's helper; every one of them is trained."""
    net = DAMP(get_preset(name))
    assert all(p.requires_grad for p in net.parameters())
    assert model_info(name)["parameters"] == sum(p.numel() for p in net.parameters())


def test_a_larger_preset_costs_more_per_pixel():
    info = {name: model_info(name) for name in ("tiny", "small", "paper")}
    assert info["tiny"]["parameters"] < info["small"]["parameters"] < info["paper"]["parameters"]
    assert info["tiny"]["flops_per_pixel"] < info["small"]["flops_per_pixel"] < info["paper"]["flops_per_pixel"]
