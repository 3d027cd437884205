"""WindowAttention through F.scaled_dot_product_attention is the Swin formula it replaced, written
out here by hand: the same parameters and state-dict keys, the same outputs and gradients (1e-5),
so models trained before the change load and run unchanged."""
from __future__ import annotations

import pytest
import torch

from damp_engine.model.attention import WindowAttention, _merge, _partition


def reference_attention(attn: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """softmax(q·scale kᵀ + bias + shift mask) v, per window, as the module computed it by hand."""
    b, c, h, w = x.shape
    win = attn.window
    sh = attn.shift if h > win else 0
    sw = attn.shift if w > win else 0
    t = x.permute(0, 2, 3, 1)
    if sh or sw:
        t = torch.roll(t, shifts=(-sh, -sw), dims=(1, 2))
    t = _partition(t, win)
    n_win, n = t.shape[1], t.shape[2]
    q, k, v = (attn.qkv(t).reshape(b, n_win, n, 3, attn.heads, c // attn.heads)
               .permute(3, 0, 1, 4, 2, 5).unbind(0))
    scores = (q * attn.scale) @ k.transpose(-2, -1)
    scores = scores + attn.bias_table[attn.bias_index].permute(2, 0, 1)
    if sh or sw:
        scores = scores + attn._shift_mask(h, w, sh, sw, x.device)
    out = (scores.softmax(dim=-1) @ v).transpose(2, 3).reshape(b, n_win, n, c)
    t = _merge(attn.proj(out), win, h, w)
    if sh or sw:
        t = torch.roll(t, shifts=(sh, sw), dims=(1, 2))
    return t.permute(0, 3, 1, 2)


CASES = {  # dim, heads, window, shift, input shape
    "unshifted": (24, 1, 8, 0, (1, 24, 32, 32)),
    "shifted": (24, 1, 8, 4, (1, 24, 32, 32)),
    "shifted, batch, several heads, not square": (16, 4, 4, 2, (3, 16, 16, 24)),
    "shift on one axis only (the other is one window)": (8, 2, 8, 4, (2, 8, 8, 32)),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_outputs_and_gradients_equal_the_hand_written_formula(case):
    dim, heads, window, shift, shape = CASES[case]
    torch.manual_seed(0)
    attn = WindowAttention(dim, heads, window, shift)
    with torch.no_grad():
        attn.bias_table.normal_(0, 1)  # a bias that matters
    x = torch.randn(shape, requires_grad=True)
    ours, theirs = attn(x), reference_attention(attn, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    weight = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * weight).sum(), [x, *attn.parameters()])
    expected = torch.autograd.grad((theirs * weight).sum(), [x, *attn.parameters()])
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_parameters_and_state_dict_keys_are_unchanged():
    attn = WindowAttention(24, 2, 8, 4)
    assert {k: tuple(v.shape) for k, v in attn.state_dict().items()} == {
        "qkv.weight": (72, 24), "qkv.bias": (72,), "proj.weight": (24, 24), "proj.bias": (24,),
        "bias_table": (225, 2)}
