"""Window multi-head self-attention with a learned relative position bias (Swin-style windows)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Added to the scores of token pairs that a shifted window must not connect; finite so that it
# stays representable under fp16 autocast, large enough that softmax gives them ~0 weight.
_MASKED = -1.0e4


def _relative_position_index(window: int) -> torch.Tensor:
    """(N, N) index into a ((2w-1)^2)-row bias table for every pair of the N = w*w window tokens."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack((ys.flatten(), xs.flatten()))             # (2, N)
    delta = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N), each in [0, 2w-2]
    return delta[0] * (2 * window - 1) + delta[1]


def _partition(t: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B, nW, w*w, C), windows in row-major order."""
    b, h, w, c = t.shape
    t = t.reshape(b, h // window, window, w // window, window, c)
    return t.permute(0, 1, 3, 2, 4, 5).reshape(b, (h // window) * (w // window), window * window, c)


def _merge(t: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `_partition`: (B, nW, w*w, C) -> (B, H, W, C)."""
    b, _, _, c = t.shape
    t = t.reshape(b, h // window, w // window, window, window, c)
    return t.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping ``window`` x ``window`` windows.

    (B, C, H, W) -> (B, C, H, W); H and W must be multiples of ``window`` (DAMP pads its input).
    Scores get a learned bias per head and relative offset between the two tokens. With
    ``shift > 0`` the window grid is displaced by ``shift`` pixels (a cyclic roll) and tokens that
    the roll brought together from opposite image borders are masked from each other. Along an
    axis no longer than one window a shift would only wrap the image onto itself, so that axis
    is left unshifted.

    The attention itself is ``F.scaled_dot_product_attention`` over the (B·nW, heads, N, d)
    window tokens, with the relative-position bias (and the shift mask) as its additive
    ``attn_mask``: softmax(q kᵀ · d^-1/2 + bias + mask) v, the Swin formula.
    """

    def __init__(self, dim: int, heads: int, window: int, shift: int = 0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide {dim} channels")
        self.heads, self.window, self.shift = heads, window, shift
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("bias_index", _relative_position_index(window), persistent=False)

    def _shift_mask(self, h: int, w: int, sh: int, sw: int, device: torch.device) -> torch.Tensor:
        """(nW, 1, N, N) additive mask separating the border regions that a (sh, sw) roll joins."""
        win = self.window
        labels = torch.zeros(h, w, device=device)
        for axis, (size, s) in enumerate(((h, sh), (w, sw))):
            if s:
                band = torch.zeros(size, device=device)
                band[size - win:size - s] = 1
                band[size - s:] = 2
                labels += band[:, None] * 3 if axis == 0 else band[None, :]
        groups = _partition(labels[None, :, :, None], win)[0, :, :, 0]  # (nW, N)
        differ = groups[:, :, None] != groups[:, None, :]
        return torch.where(differ, _MASKED, 0.0)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        win = self.window
        sh = self.shift if h > win else 0
        sw = self.shift if w > win else 0
        t = x.permute(0, 2, 3, 1)
        if sh or sw:
            t = torch.roll(t, shifts=(-sh, -sw), dims=(1, 2))
        t = _partition(t, win)                                         # (B, nW, N, C)
        n_win, n = t.shape[1], t.shape[2]
        q, k, v = (self.qkv(t).reshape(b * n_win, n, 3, self.heads, c // self.heads)
                   .permute(2, 0, 3, 1, 4).unbind(0))                 # each (B·nW, heads, N, c/heads)
        mask = self.bias_table[self.bias_index].permute(2, 0, 1)[None]  # (1, heads, N, N)
        if sh or sw:  # (nW, heads, N, N), the same for every image of the batch
            mask = (mask + self._shift_mask(h, w, sh, sw, x.device)).expand(b, -1, -1, -1, -1).flatten(0, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype), scale=self.scale)
        out = out.transpose(1, 2).reshape(b, n_win, n, c)
        t = _merge(self.proj(out), win, h, w)
        if sh or sw:
            t = torch.roll(t, shifts=(sh, sw), dims=(1, 2))
        return t.permute(0, 3, 1, 2)
