"""The degradation-adaptive mixture of experts (DAMoE) and its SSAM experts (DESIGN §4)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import WindowAttention
from .blocks import GatedFFN, LayerNorm2d

SHARED_SPATIAL_SHARE = 0.9  # fixed λ_s of the shared (degradation-agnostic) expert


def initial_alphas(experts: int) -> list[float]:
    """Spread-out initial α (λ_s = sigmoid(α)) so that experts start specialised.

    The first half of the experts lean spatial (α > 0), the second half spectral (α < 0), with
    magnitudes spaced geometrically from 4 down to 1; an odd middle expert starts balanced
    (α = 0). Four experts get 4, 1, -1, -4, i.e. λ_s ≈ 0.98, 0.73, 0.27, 0.02.
    """
    half = experts // 2
    magnitudes = [4.0 * 0.25 ** (i / (half - 1)) if half > 1 else 4.0 for i in range(half)]
    return magnitudes + [0.0] * (experts % 2) + [-m for m in reversed(magnitudes)]


class SpatialBranch(nn.Module):
    """E_s: 1x1 conv C -> C/4, window self-attention, 1x1 conv back. (B, C, H, W) -> (B, C, H, W).

    The attention runs with the level's head count reduced to a divisor of C/4.
    """

    def __init__(self, dim: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        reduced = max(1, dim // 4)
        self.reduce = nn.Conv2d(dim, reduced, 1)
        self.attn = WindowAttention(reduced, math.gcd(heads, reduced), window, shift)
        self.restore = nn.Conv2d(reduced, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restore(self.attn(self.reduce(x)))


def box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of (B, C, H, W) over the ``size`` × ``size`` box around every pixel, of the pixels
    inside the image (avg_pool2d with stride 1 and count_include_pad=False), computed as two
    depth-wise convolutions with a row and a column of ones: several times faster on the CPU."""
    c, r = x.shape[1], size // 2
    row = x.new_ones(c, 1, 1, size)
    summed = F.conv2d(F.conv2d(x, row, padding=(0, r), groups=c), row.transpose(2, 3), padding=(r, 0), groups=c)
    count = []
    for n in x.shape[-2:]:  # pixels of the box inside the image, along each axis
        at = torch.arange(n, device=x.device)
        count.append((at + r).clamp(max=n - 1) - (at - r).clamp(min=0) + 1)
    return summed / (count[0][:, None] * count[1][None, :]).to(x.dtype)


class SpectralBranch(nn.Module):
    """E_c: 1x1 conv C -> C, then channel attention along the channel axis, pooled locally.

    (B, C, H, W) -> (B, C, H, W): the conv output y is averaged over a ``pool`` × ``pool`` box
    around every pixel (a local descriptor, so the receptive field stays bounded and tiles
    join seamlessly, DESIGN §4a.6); a 1-D convolution (kernel 7, zero padded) slides along the
    channel axis of each pixel's descriptor, and y is multiplied by the sigmoid of the result.
    """

    def __init__(self, dim: int, kernel: int = 7, pool: int = 9) -> None:
        super().__init__()
        self.mix = nn.Conv2d(dim, dim, 1)
        self.channel_conv = nn.Conv1d(1, 1, kernel, padding=kernel // 2)
        self.pool = pool

    def channel_matrix(self) -> torch.Tensor:
        """(C, C) banded matrix M with (M·d)_c = Σ_k w_k d_{c+k-r}: the zero-padded 1-D convolution
        along the channel axis as one matrix, so it runs as a 1x1 convolution over every pixel."""
        taps = self.channel_conv.weight.view(-1)
        c, r = self.mix.out_channels, taps.numel() // 2
        offset = torch.arange(c, device=taps.device)[None, :] - torch.arange(c, device=taps.device)[:, None] + r
        inside = (offset >= 0) & (offset < taps.numel())
        return torch.where(inside, taps[offset.clamp(0, taps.numel() - 1)], taps.new_zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mix(x)
        local = box_mean(y, self.pool)
        logits = F.conv2d(local, self.channel_matrix()[:, :, None, None].to(local.dtype),
                          self.channel_conv.bias.expand(y.shape[1]).to(local.dtype))
        return y * torch.sigmoid(logits)


class SSAM(nn.Module):
    """Spatial-spectral adaptive module: ``x + λ_s·E_s(x) + λ_c·E_c(x)``, λ_c = 1 - λ_s.

    (B, C, H, W) -> (B, C, H, W). λ_s = sigmoid(α) with α one scalar of the expert (not
    predicted from the input): learned when ``learn_share`` is true, fixed otherwise (the shared
    expert).
    """

    def __init__(self, dim: int, heads: int, window: int, shift: int, alpha: float,
                 learn_share: bool = True) -> None:
        super().__init__()
        if learn_share:
            self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        else:
            self.register_buffer("alpha", torch.tensor(float(alpha)), persistent=False)
        self.spatial = SpatialBranch(dim, heads, window, shift)
        self.spectral = SpectralBranch(dim)

    @property
    def spatial_share(self) -> torch.Tensor:
        """λ_s, a 0-d tensor in (0, 1)."""
        return torch.sigmoid(self.alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        share = self.spatial_share
        return x + share * self.spatial(x) + (1 - share) * self.spectral(x)


def _cv_squared(values: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation of a 1-D tensor (0 for a single value)."""
    if values.numel() < 2:
        return values.new_zeros(())
    values = values.float()
    return values.var() / (values.mean() ** 2 + 1e-10)


class Router(nn.Module):
    """Noisy top-k gate driven by the degradation-prompt embedding of the scene.

    (e (B, emb)) -> (gates (B, E), aux ()).

    logits = W_e·e + b. The feature term W_x·GAP(x_a) of DESIGN §4 is left out on purpose: a
    global average over a tile would make each tile route differently and break the bounded
    receptive field of DESIGN §4a.6, while the prompt is measured once per scene. In training, Gaussian
    noise of variance 1/E is added to the logits; softmax; the top-k probabilities of each
    sample are kept and renormalised to sum to 1, the others set to 0. In eval mode there is no
    noise, so routing is deterministic and per sample.

    aux is the load-balancing loss of noisy top-k MoE: CV²(importance) + CV²(load) over the
    batch, where importance is the summed gates per expert and load the expected number of
    samples sent to each expert (smooth, from the noise's normal CDF, when training with
    k < E; the plain count otherwise).
    """

    def __init__(self, emb: int, experts: int, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.noise_std = experts ** -0.5
        self.from_prompt = nn.Linear(emb, experts)

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clean = self.from_prompt(e)
        noisy = clean + torch.randn_like(clean) * self.noise_std if self.training else clean
        kept, index = noisy.softmax(dim=-1).topk(self.top_k, dim=-1)
        gates = torch.zeros_like(clean).scatter(1, index, kept / kept.sum(dim=-1, keepdim=True))
        if self.training and self.top_k < clean.shape[1]:
            load = self._smooth_load(clean, noisy)
        else:
            load = (gates > 0).sum(dim=0).to(clean.dtype)
        return gates, _cv_squared(gates.sum(dim=0)) + _cv_squared(load)

    def _smooth_load(self, clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        """Per expert, the summed probability (over fresh noise) that each sample selects it."""
        k = self.top_k
        top = noisy.topk(k + 1, dim=-1).values
        stay_above, enter_above = top[:, k:k + 1], top[:, k - 1:k]
        selected = noisy > stay_above
        threshold = torch.where(selected, stay_above, enter_above)
        z = (clean - threshold) / self.noise_std
        return (0.5 * (1 + torch.erf(z / math.sqrt(2)))).sum(dim=0)


class DAMoE(nn.Module):
    """Degradation-adaptive mixture of SSAM experts.

    (x (B, C, H, W), e (B, emb)) -> (y (B, C, H, W), gates (B, E), aux ()).

    Two 1x1 convs split x into a shared part x_s and an adaptive part x_a. The shared part goes
    through one SSAM with a fixed λ_s = 0.9. The router picks top-k experts per sample from
    the prompt embedding e; adaptive = 1x1 conv(Σ_i g_i·SSAM_i(x_a)) + x_a. Only the selected experts
    run, each on the samples that chose it (sparse, and exact: unselected gates are 0). Finally
    concat(adaptive, shared) -> 1x1 conv.
    """

    def __init__(self, dim: int, emb: int, heads: int, window: int, shift: int,
                 experts: int, top_k: int) -> None:
        super().__init__()
        self.to_shared = nn.Conv2d(dim, dim, 1)
        self.to_adaptive = nn.Conv2d(dim, dim, 1)
        fixed_alpha = math.log(SHARED_SPATIAL_SHARE / (1 - SHARED_SPATIAL_SHARE))
        self.shared = SSAM(dim, heads, window, shift, fixed_alpha, learn_share=False)
        self.experts = nn.ModuleList(SSAM(dim, heads, window, shift, a) for a in initial_alphas(experts))
        self.router = Router(emb, experts, top_k)
        self.combine = nn.Conv2d(dim, dim, 1)
        self.fuse = nn.Conv2d(2 * dim, dim, 1)

    def spatial_shares(self) -> torch.Tensor:
        """λ_s of each expert, (E,)."""
        return torch.stack([expert.spatial_share for expert in self.experts])

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shared, adaptive = self.to_shared(x), self.to_adaptive(x)
        gates, aux = self.router(e)
        mixed = torch.zeros_like(adaptive)
        for i, expert in enumerate(self.experts):
            chosen = torch.nonzero(gates[:, i] > 0).flatten()
            if chosen.numel():
                weighted = gates[chosen, i, None, None, None] * expert(adaptive[chosen])
                mixed = mixed.index_add(0, chosen, weighted.to(mixed.dtype))
        adaptive = self.combine(mixed) + adaptive
        return self.fuse(torch.cat((adaptive, self.shared(shared)), dim=1)), gates, aux


class DecoderBlock(nn.Module):
    """Decoder block: ``x + DAMoE(LN(x), e)`` then ``x + FFN(LN(x))``.

    (x (B, C, H, W), e (B, emb)) -> (x (B, C, H, W), gates (B, E), aux ()).
    """

    def __init__(self, dim: int, emb: int, heads: int, window: int, shift: int,
                 ffn_expansion: float, experts: int, top_k: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.moe = DAMoE(dim, emb, heads, window, shift, experts, top_k)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GatedFFN(dim, ffn_expansion)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        update, gates, aux = self.moe(self.norm1(x), e)
        x = x + update
        return x + self.ffn(self.norm2(x)), gates, aux
