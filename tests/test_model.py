"""The DAMP network: shapes, determinism, routing trace and training signals (DESIGN §4)."""
from __future__ import annotations

import pytest
import torch

from damp_engine.errors import DampInputError
from damp_engine.model import DAMP, PRESETS, Preset, count_parameters, get_preset, model_info
from damp_engine.model.attention import WindowAttention
from damp_engine.model.experts import initial_alphas


@pytest.fixture(scope="module")
def tiny() -> DAMP:
    torch.manual_seed(0)
    return DAMP(get_preset("tiny")).eval()


def cube(batch: int = 1, rows: int = 32, cols: int = 32, bands: int = 31, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, bands, rows, cols, generator=g)


def test_output_keeps_odd_sizes(tiny):
    with torch.no_grad():
        y = tiny(cube(2, 37, 45))
    assert y.shape == (2, 31, 37, 45)
    assert torch.isfinite(y).all()


def test_tiny_inputs_are_padded_and_cropped(tiny):
    with torch.no_grad():
        y8 = tiny(cube(1, 8, 8))
        y3 = tiny(cube(1, 3, 5), prompt=torch.zeros(1, 6))  # too small for the prompt: give it
    assert y8.shape == (1, 31, 8, 8) and y3.shape == (1, 31, 3, 5)
    assert torch.isfinite(y8).all() and torch.isfinite(y3).all()


def test_eval_is_deterministic(tiny):
    x = cube(2)
    with torch.no_grad():
        assert torch.equal(tiny(x), tiny(x))


def test_sample_output_does_not_depend_on_batch(tiny):
    x = torch.cat([cube(1, seed=1), 0.3 * cube(1, seed=2), cube(1, seed=3) ** 3])
    with torch.no_grad():
        together = tiny(x)
        alone = torch.cat([tiny(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_trace_records_every_decoder_block(tiny):
    p = tiny.preset
    with torch.no_grad():
        y, trace = tiny(cube(2), return_trace=True)
    n_blocks = sum(p.dec_blocks)
    assert y.shape == (2, 31, 32, 32)
    assert len(trace.block_names) == n_blocks
    assert trace.gates.shape == (2, n_blocks, p.experts)
    assert trace.spatial_share.shape == (n_blocks, p.experts)
    assert trace.mean_gates().shape == (n_blocks, p.experts)
    torch.testing.assert_close(trace.gates.sum(-1), torch.ones(2, n_blocks))
    assert ((trace.gates > 0).sum(-1) == p.top_k).all()


def test_experts_start_with_spread_spatial_shares(tiny):
    assert initial_alphas(4) == [4.0, 1.0, -1.0, -4.0]
    expected = torch.sigmoid(torch.tensor([4.0, 1.0, -1.0, -4.0]))
    for shares in tiny.spatial_shares():
        torch.testing.assert_close(shares, expected)
    shared = tiny.decoders[0][0].moe.shared.spatial_share
    assert shared.item() == pytest.approx(0.9)
    assert "decoders.0.0.moe.shared.alpha" not in tiny.state_dict()  # fixed, not learned


def test_skip_gate_starts_open_and_follows_the_prompt():
    torch.manual_seed(3)
    net = DAMP(get_preset("tiny")).eval()
    x, prompts = cube(2), torch.rand(2, 6)
    with torch.no_grad():
        gate = net.skip_gate(net._embed(x, prompts))
        assert gate.shape == (2, 31, 1, 1)
        torch.testing.assert_close(gate, torch.full_like(gate, torch.sigmoid(torch.tensor(3.0)).item()))
        net.skip_gate.linear.weight.normal_()
        net.output.weight.zero_()
        net.output.bias.zero_()
        gate = net.skip_gate(net._embed(x, prompts))
        y = net(x, prompts)
    assert not torch.equal(gate[0], gate[1])  # two prompts, two gates
    torch.testing.assert_close(y, gate * x)  # y = net(x) + g(e) ⊙ x, and net(x) = 0 here


def test_training_gives_aux_loss_and_gradients_to_router_and_experts():
    torch.manual_seed(1)
    net = DAMP(get_preset("tiny")).train()
    x = cube(4)
    y, trace, aux = net(x, return_trace=True, return_aux=True)
    assert aux.ndim == 0 and aux.item() > 0
    ((y - x).abs().mean() + 0.01 * aux).backward()
    moe = net.decoders[0][0].moe
    assert moe.router.from_features.weight.grad.abs().sum() > 0
    assert moe.router.from_prompt.weight.grad.abs().sum() > 0
    assert net.embed_prompt.body[0].weight.grad.abs().sum() > 0
    used = trace.gates[:, 0].sum(0) > 0
    for i, expert in enumerate(moe.experts):
        if used[i]:
            assert expert.alpha.grad.abs() > 0
            assert expert.spectral.mix.weight.grad.abs().sum() > 0


def test_training_routing_is_noisy_but_eval_is_not():
    torch.manual_seed(2)
    net = DAMP(get_preset("tiny"))
    x, prompt = cube(1), torch.zeros(1, 6)
    with torch.no_grad():
        noisy = [net.train()(x, prompt, return_trace=True)[1].gates for _ in range(8)]
        clean = [net.eval()(x, prompt, return_trace=True)[1].gates for _ in range(2)]
    assert any(not torch.equal(noisy[0], g) for g in noisy[1:])
    assert torch.equal(clean[0], clean[1])


def test_prompt_normalisation_is_stored_and_used(tiny):
    net = DAMP(tiny.preset).eval()
    net.load_state_dict(tiny.state_dict())
    x, prompt = cube(1), torch.rand(1, 6)
    with torch.no_grad():
        before = net(x, prompt)
        net.set_prompt_normalisation([0.1] * 6, [2.0] * 6)
        after = net(x, prompt)
    assert torch.equal(net.state_dict()["dp_scale"], torch.full((6,), 2.0))
    assert not torch.equal(before, after)
    with pytest.raises(DampInputError):
        net.set_prompt_normalisation([0.0] * 6, [1.0, 0.0, 1.0, 1.0, 1.0, 1.0])


def test_wrong_band_count_points_to_restore_cube(tiny):
    with pytest.raises(DampInputError, match="restore_cube"):
        tiny(cube(1, bands=12))


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
