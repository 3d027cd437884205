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


class SkipGate(nn.Module):
    """Per-band share of the input the output keeps, from the prompt embedding: (B, emb) -> (B, C, 1, 1).

    sigmoid(Linear(e)), starting near 1 (bias 3): a blurred or band-less input mostly passes
    through, a noisy one can be let go of quickly. With a fixed identity skip the network has
    to learn to cancel its whole noisy input before it can denoise, which takes far more steps
    than a CPU budget allows.
    """

    def __init__(self, emb: int, bands: int, open_bias: float = 3.0) -> None:
        super().__init__()
        self.linear = nn.Linear(emb, bands)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, open_bias)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(e))[:, :, None, None]


class DAMP(nn.Module):
    """Degradation-aware metric prompting network (DESIGN §4).

    ``forward(x, prompt=None, return_trace=False, return_aux=False)``:

    x:       (B, C, H, W), C = ``preset.bands``, values about [0, 1], any H, W >= 1. It is padded
             internally (reflect where the image is large enough, else replicate) to a multiple of
             ``preset.size_multiple`` and the result cropped back.
    prompt:  raw degradation-prompt values (B, 6) in ``damp_engine.prompt.METRIC_NAMES`` order,
             or None to compute them from x (without gradient). They are normalised with the
             ``dp_shift`` / ``dp_scale`` buffers (saved with the weights) and embedded into
             e (B, emb), which drives every DAMoE router.

    Returns y (B, C, H, W) = net(x) + g(e) ⊙ x, where g is the prompt-gated skip (``SkipGate``,
    one share per band). Flags append to a tuple, in this order:
    ``return_trace`` adds a ``RoutingTrace`` (detached), ``return_aux`` adds the load-balancing
    loss, a scalar summed over all DAMoE blocks (the trainer weights it, 0.01). So the result
    is ``y``, ``(y, trace)``, ``(y, aux)`` or ``(y, trace, aux)``.

    In eval mode the output is deterministic and each sample's output depends only on that
    sample (routing has no noise and no batch statistics).
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

        self.shallow = nn.Conv2d(p.bands, p.dim, 3, padding=1)
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
        self.output = nn.Conv2d(p.dim, p.bands, 3, padding=1)
        self.skip_gate = SkipGate(p.emb, p.bands)

    @torch.no_grad()
    def set_prompt_normalisation(self, shift: Sequence[float] | torch.Tensor,
                                 scale: Sequence[float] | torch.Tensor) -> None:
        """Store the per-metric normalisation ``(prompt - shift) / scale`` (training statistics)."""
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

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.preset.bands or x.shape[2] < 1 or x.shape[3] < 1:
            raise DampInputError(
                f"The network expects a (batch, {self.preset.bands}, rows, cols) cube, got shape "
                f"{tuple(x.shape)}; restore other band counts with damp_engine.spectral.restore_cube.")

    def _embed(self, x: torch.Tensor, prompt: torch.Tensor | None) -> torch.Tensor:
        if prompt is None:
            from ..prompt import compute_prompt

            with torch.no_grad():
                prompt = compute_prompt(x).values
        if prompt.shape != (x.shape[0], N_METRICS):
            raise DampInputError(
                f"The degradation prompt must have shape ({x.shape[0]}, {N_METRICS}), got {tuple(prompt.shape)}.")
        prompt = prompt.to(device=self.dp_shift.device, dtype=self.dp_shift.dtype)
        return self.embed_prompt((prompt - self.dp_shift) / self.dp_scale)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        m = self.preset.size_multiple
        h, w = x.shape[-2:]
        ph, pw = -h % m, -w % m
        if not (ph or pw):
            return x
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor | None = None, return_trace: bool = False,
                return_aux: bool = False) -> torch.Tensor | tuple[Any, ...]:
        self._check_input(x)
        e = self._embed(x, prompt)
        h, w = x.shape[-2:]

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
        y = self.output(self.refine(feats))[..., :h, :w] + self.skip_gate(e) * x

        result: tuple[Any, ...] = (y,)
        if return_trace:
            result += (RoutingTrace(list(self.block_names), torch.stack(gates, dim=1).detach(),
                                    self.spatial_shares().detach()),)
        if return_aux:
            result += (aux,)
        return result[0] if len(result) == 1 else result


def count_parameters(net: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def model_info(preset: str | Preset) -> dict[str, Any]:
    """Size and cost of a preset: ``{"preset", "parameters", "flops_per_pixel"}``.

    FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2)
    for one eval-mode pass of the network on a (1, bands, 64, 64) input, divided by 64·64; the
    prompt is given, so the metric computation is not included. Only the top-k experts run.
    The global random state is left untouched.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    side = 64
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = DAMP(p).eval()
        x = torch.rand(1, p.bands, side, side)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            net(x, prompt=torch.zeros(1, N_METRICS))
    return {"preset": p.name, "parameters": count_parameters(net),
            "flops_per_pixel": counter.get_total_flops() / (side * side)}
