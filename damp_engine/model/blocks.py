"""Building blocks shared by the encoder, latent and refinement stages (DESIGN §4)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import WindowAttention


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of every pixel, with a learned scale and bias.

    (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, eps=1e-5)
        return t.permute(0, 3, 1, 2)


class GatedFFN(nn.Module):
    """Gated depth-wise-convolution feed-forward network.

    (B, C, H, W) -> (B, C, H, W): a 1x1 conv to 2h channels (h = C * expansion), a 3x3
    depth-wise conv, then GELU(first half) * second half and a 1x1 conv back to C.
    """

    def __init__(self, dim: int, expansion: float) -> None:
        super().__init__()
        hidden = max(1, round(dim * expansion))
        self.expand = nn.Conv2d(dim, 2 * hidden, 1)
        self.depthwise = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.project = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.depthwise(self.expand(x)).chunk(2, dim=1)
        return self.project(F.gelu(value) * gate)


class TransformerBlock(nn.Module):
    """Encoder block: ``x + WMSA(LN(x))`` then ``x + FFN(LN(x))``.

    (B, C, H, W) -> (B, C, H, W); H and W multiples of ``window``.
    """

    def __init__(self, dim: int, heads: int, window: int, shift: int, ffn_expansion: float) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attn = WindowAttention(dim, heads, window, shift)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GatedFFN(dim, ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def encoder_stage(n_blocks: int, dim: int, heads: int, window: int, ffn_expansion: float) -> nn.Sequential:
    """``n_blocks`` TransformerBlocks; the odd ones (2nd, 4th, ...) use windows shifted by window // 2."""
    return nn.Sequential(*(
        TransformerBlock(dim, heads, window, (window // 2) * (i % 2), ffn_expansion) for i in range(n_blocks)))


class Downsample(nn.Module):
    """3x3 conv C -> C/2, then PixelUnshuffle(2): (B, C, H, W) -> (B, 2C, H/2, W/2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """2x2 transposed conv with stride 2: (B, C, H, W) -> (B, C/2, 2H, 2W)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
