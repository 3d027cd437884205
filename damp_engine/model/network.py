"""The DAMP U-Net: window-attention encoder, DAMoE decoder routed by the degradation prompt."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import DampInputError
from .blocks import Downsample, Upsample, encoder_stage
from .experts import DecoderBlock
from .presets import Preset, get_preset

N_METRICS = 6  # length of the degradation prompt, see damp_engine.prompt.METRIC_NAMES


@dataclass(frozen=True)
class RoutingTrace:
    """How every DAMoE block of one forward pass routed its input.

    block_names:    one name per DAMoE block in execution order, ``"dec{level}.{block}"``
                    (level 1 = full resolution).
    gates:          (B, n_blocks, E) gates after top-k; unselected experts are 0.
    spatial_share:  (n_blocks, E) λ_s of each expert (λ_c = 1 - λ_s).
    """

    block_names: list[str]
    gates: torch.Tensor
    spatial_share: torch.Tensor

    def mean_gates(self) -> torch.Tensor:
        """Gates averaged over the batch, (n_blocks, E)."""
        return self.gates.mean(dim=0)


class PromptEmbedding(nn.Module):
    """MLP from the normalised degradation prompt to its embedding: (B, 6) -> (B, emb).

    Linear -> GELU -> Linear -> LayerNorm.
    """

    def __init__(self, n_metrics: int, emb: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_metrics, emb), nn.GELU(), nn.Linear(emb, emb), nn.LayerNorm(emb))

    def forward(self, prompt: torch.Tensor) -> torch.Tensor:
        return self.body(prompt)


@dataclass
class DampOutput:
    """What one forward pass returns.

    components:  (B, K, H, W) restored eigen-images, in the input's per-component scale.
    trace:       how every DAMoE block routed (detached).
    aux:         load-balancing loss summed over the DAMoE blocks (0-d).
    """

    components: torch.Tensor
    trace: RoutingTrace
    aux: torch.Tensor


LOG_METRICS = ("hfer", "scm", "scs", "gstd")  # metrics spanning decades: embedded by their log


def prompt_features(prompt: torch.Tensor) -> torch.Tensor:
    """(B, 6) raw prompt -> the values the normalisation applies to: log10 of HFER, SCM, SCS, GSTD.

    Blur and coarse pixels move HFER and GSTD by factors, noise by orders of magnitude; on a
    log scale both are visible after one normalisation (DESIGN §4a, the prompt's separation).
    """
    from ..names import METRIC_NAMES

    logs = torch.tensor([name in LOG_METRICS for name in METRIC_NAMES], device=prompt.device)
    return torch.where(logs, torch.log10(prompt.clamp_min(1e-8)), prompt)


class DAMP(nn.Module):
    """Degradation-aware metric prompting network over eigen-images (DESIGN §4, §4a).

    ``forward(x, prompt)`` -> ``DampOutput``:

    x:       (B, 2K + 1, H, W), K = ``preset.components``: the scene's eigen-images z, their
             closed-form estimate z₀ (both divided by each component's noise-free std) and the
             gap mask (1 where a pixel had no valid band and z was interpolated). Any H, W >= 1:
             padded internally (reflect, else replicate) to a multiple of ``preset.size_multiple``
             and cropped back.
    prompt:  raw degradation-prompt values (B, 6) of the raw cube (``METRIC_NAMES`` order).
             `prompt_features` then the ``dp_shift`` / ``dp_scale`` buffers (saved with the
             weights) normalise it; an MLP embeds it into e (B, emb), which drives every DAMoE
             router.

    The restored eigen-images are z₀ + net(x, e): the network adds to the closed-form estimate
    (its last convolution starts at zero, so an untrained network returns z₀ exactly).

    In eval mode the output is deterministic and each sample's output depends only on that
    sample and on a bounded neighbourhood of each pixel (no global pooling, no batch statistics).
    """

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        p = preset
        self.preset = p
        dims = [p.dim * 2**level for level in range(p.levels)]
        half = p.window // 2

        self.register_buffer("dp_shift", torch.zeros(N_METRICS))
        self.register_buffer("dp_scale", torch.ones(N_METRICS))
        self.embed_prompt = PromptEmbedding(N_METRICS, p.emb)

        self.shallow = nn.Conv2d(2 * p.components + 1, p.dim, 3, padding=1)
        self.encoders = nn.ModuleList(
            encoder_stage(n, dims[level], p.heads[level], p.window, p.ffn_expansion)
            for level, n in enumerate(p.enc_blocks))
        self.downs = nn.ModuleList(Downsample(dims[level]) for level in range(p.levels - 1))
        self.latent = encoder_stage(p.latent_blocks, dims[-1], p.heads[-1], p.window, p.ffn_expansion)

        self.ups, self.fuses, self.decoders = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.block_names: list[str] = []
        for step, n in enumerate(p.dec_blocks):
            level = p.levels - 2 - step  # 0-based level this decoder stage works at
            self.ups.append(Upsample(dims[level + 1]))
            self.fuses.append(nn.Conv2d(2 * dims[level], dims[level], 1))
            self.decoders.append(nn.ModuleList(
                DecoderBlock(dims[level], p.emb, p.heads[level], p.window, half * (i % 2),
                             p.ffn_expansion, p.experts, p.top_k) for i in range(n)))
            self.block_names += [f"dec{level + 1}.{i}" for i in range(n)]

        self.refine = encoder_stage(p.refine_blocks, p.dim, p.heads[0], p.window, p.ffn_expansion)
        self.output = nn.Conv2d(p.dim, p.components, 3, padding=1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    @property
    def in_channels(self) -> int:
        return 2 * self.preset.components + 1

    @torch.no_grad()
    def set_prompt_normalisation(self, shift: Sequence[float] | torch.Tensor,
                                 scale: Sequence[float] | torch.Tensor) -> None:
        """Store the normalisation ``(prompt_features(prompt) - shift) / scale`` (training statistics)."""
        shift_t = torch.as_tensor(shift, dtype=torch.float32).flatten()
        scale_t = torch.as_tensor(scale, dtype=torch.float32).flatten()
        if shift_t.numel() != N_METRICS or scale_t.numel() != N_METRICS:
            raise DampInputError(f"Prompt normalisation needs {N_METRICS} shifts and {N_METRICS} scales.")
        if not (torch.isfinite(shift_t).all() and torch.isfinite(scale_t).all() and (scale_t > 0).all()):
            raise DampInputError("Prompt normalisation must be finite with positive scales.")
        self.dp_shift.copy_(shift_t)
        self.dp_scale.copy_(scale_t)

    def spatial_shares(self) -> torch.Tensor:
        """λ_s of every expert of every DAMoE block, (n_blocks, E)."""
        return torch.stack([block.moe.spatial_shares() for blocks in self.decoders for block in blocks])

    def _check_input(self, x: torch.Tensor, prompt: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] < 1 or x.shape[3] < 1:
            raise DampInputError(
                f"The network expects a (batch, {self.in_channels}, rows, cols) input of eigen-images, got "
                f"shape {tuple(x.shape)}; restore cubes with damp_engine.restoration.restore_cube.")
        if prompt.shape != (x.shape[0], N_METRICS):
            raise DampInputError(
                f"The degradation prompt must have shape ({x.shape[0]}, {N_METRICS}), got {tuple(prompt.shape)}.")

    def embed(self, prompt: torch.Tensor) -> torch.Tensor:
        """(B, 6) raw prompt -> (B, emb) embedding e."""
        prompt = prompt.to(device=self.dp_shift.device, dtype=self.dp_shift.dtype)
        return self.embed_prompt((prompt_features(prompt) - self.dp_shift) / self.dp_scale)

    @torch.no_grad()
    def route(self, prompt: torch.Tensor) -> RoutingTrace:
        """How every DAMoE block routes an input with raw prompts (B, 6), without running the blocks.

        The routers see only the prompt embedding, so this is the routing of `forward` exactly.
        """
        e = self.embed(prompt)
        gates = [block.moe.router(e)[0] for blocks in self.decoders for block in blocks]
        return RoutingTrace(list(self.block_names), torch.stack(gates, dim=1), self.spatial_shares().detach())

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        m = self.preset.size_multiple
        h, w = x.shape[-2:]
        ph, pw = -h % m, -w % m
        if not (ph or pw):
            return x
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor) -> DampOutput:
        self._check_input(x, prompt)
        e = self.embed(prompt)
        h, w = x.shape[-2:]
        k = self.preset.components

        feats = self.shallow(self._pad(x))
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            feats = encoder(feats)
            skips.append(feats)
            feats = down(feats)
        feats = self.latent(feats)

        gates, aux = [], x.new_zeros((), dtype=torch.float32)
        for up, fuse, blocks in zip(self.ups, self.fuses, self.decoders):
            feats = fuse(torch.cat((up(feats), skips.pop()), dim=1))
            for block in blocks:
                feats, block_gates, block_aux = block(feats, e)
                gates.append(block_gates)
                aux = aux + block_aux
        components = x[:, k:2 * k] + self.output(self.refine(feats))[..., :h, :w]
        trace = RoutingTrace(list(self.block_names), torch.stack(gates, dim=1).detach(),
                             self.spatial_shares().detach())
        return DampOutput(components, trace, aux)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def model_info(preset: str | Preset) -> dict[str, Any]:
    """Size and cost of a preset: ``{"preset", "parameters", "flops_per_pixel"}``.

    FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2)
    for one eval-mode pass of the network on a (1, 2K + 1, 64, 64) input, divided by 64·64; the
    prompt is given, so the metric computation is not included. Only the top-k experts run.
    The global random state is left untouched.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    side = 64
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = DAMP(p).eval()
        x = torch.rand(1, net.in_channels, side, side)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            net(x, torch.ones(1, N_METRICS))
    return {"preset": p.name, "parameters": count_parameters(net),
            "flops_per_pixel": counter.get_total_flops() / (side * side)}
