"""Network presets: the DAMP architecture as data.

A preset fixes every size of the network (DESIGN §4). Levels are numbered 1..L from the
full-resolution level down to the latent level; level i works at ``dim * 2**(i-1)`` channels
and ``1 / 2**(i-1)`` of the input size.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import DampInputError


@dataclass(frozen=True)
class Preset:
    """Sizes of one DAMP network.

    name:           short name, stored in the model card.
    components:     eigen-image channels K the network restores (DESIGN §4a); it takes 2K + 1
                    channels (noisy eigen-images, their closed-form estimate, the gap mask).
    dim:            channels d at level 1.
    enc_blocks:     encoder blocks per level 1..L-1 (top to bottom), length L-1.
    latent_blocks:  encoder-style blocks at the latent level L.
    dec_blocks:     decoder (DAMoE) blocks per decoder level in execution order, i.e. deepest
                    first: levels L-1, ..., 1; length L-1.
    refine_blocks:  encoder blocks at level 1 after the decoder.
    heads:          attention heads per level 1..L (latent included), length L.
    experts:        experts E per DAMoE.
    top_k:          experts kept per sample by each router.
    window:         attention window side (shifted by window // 2 in alternate blocks).
    emb:            size of the degradation-prompt embedding e.
    ffn_expansion:  hidden-width factor of the gated feed-forward network.
    """

    name: str
    dim: int
    enc_blocks: tuple[int, ...]
    latent_blocks: int
    dec_blocks: tuple[int, ...]
    refine_blocks: int
    heads: tuple[int, ...]
    ffn_expansion: float
    components: int = 16
    experts: int = 4
    top_k: int = 2
    window: int = 8
    emb: int = 128

    def __post_init__(self) -> None:
        levels = len(self.heads)
        problems = []
        if levels < 2:
            problems.append("heads must list at least two levels (one above the latent)")
        if len(self.enc_blocks) != levels - 1 or len(self.dec_blocks) != levels - 1:
            problems.append(f"enc_blocks and dec_blocks need {levels - 1} entries (one per level above the latent)")
        if self.components < 1 or self.emb < 1 or self.window < 1:
            problems.append("components, emb and window must be positive")
        if self.dim < 4 or self.dim % 2:
            problems.append("dim must be even and at least 4 (down-sampling halves it)")
        if not 1 <= self.top_k <= self.experts:
            problems.append("top_k must lie between 1 and the number of experts")
        if self.ffn_expansion <= 0:
            problems.append("ffn_expansion must be positive")
        if any(n < 0 for n in (*self.enc_blocks, *self.dec_blocks, self.latent_blocks, self.refine_blocks)):
            problems.append("block counts cannot be negative")
        if sum(self.dec_blocks) < 1:
            problems.append("at least one decoder block is needed (the prompt routes the decoder's experts)")
        for level, h in enumerate(self.heads):
            channels = self.dim * 2**level
            if h < 1 or channels % h:
                problems.append(f"heads[{level}] = {h} must divide the {channels} channels of level {level + 1}")
        if problems:
            raise DampInputError(f"Preset {self.name!r} is inconsistent: " + "; ".join(problems) + ".")

    @property
    def levels(self) -> int:
        """Number of levels L, the latent level included."""
        return len(self.heads)

    @property
    def size_multiple(self) -> int:
        """Height and width are padded internally to a multiple of this."""
        return self.window * 2 ** (self.levels - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists); ``Preset.from_dict`` inverts it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        """Rebuild a preset from ``to_dict`` output (e.g. a model card); DampInputError if malformed."""
        if not isinstance(data, dict):
            raise DampInputError("The model card's 'preset' must be a JSON object; the card is damaged.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DampInputError(
                f"The model card's preset has unknown fields {unknown}; it was written by another "
                "version of DAMP. Update the plugin or use a model made for this version.")
        try:
            values = {k: tuple(int(n) for n in v) if isinstance(v, list) else v for k, v in data.items()}
            return cls(**values)
        except DampInputError:
            raise
        except (TypeError, ValueError) as exc:
            raise DampInputError(f"The model card's preset cannot be read ({exc}); the card is damaged.") from exc


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        # Sizes as reported by model_info (parameters, FLOPs per pixel counted at 64x64).
        # 0.36 M parameters, 0.15 MFLOP/pixel: trains on a 2-core laptop CPU.
        Preset(name="tiny", dim=24, enc_blocks=(1, 1), latent_blocks=2, dec_blocks=(1, 1),
               refine_blocks=1, heads=(1, 2, 4), ffn_expansion=2.0, emb=64),
        # 1.5 M parameters, 0.59 MFLOP/pixel: CPU-trainable with patience, comfortable on a GPU.
        Preset(name="small", dim=32, enc_blocks=(2, 3), latent_blocks=4, dec_blocks=(3, 2),
               refine_blocks=2, heads=(1, 2, 4), ffn_expansion=2.66, emb=128),
        # 41 M parameters, 4.8 MFLOP/pixel: the paper's 4 levels and depths (a GPU model).
        Preset(name="paper", dim=64, enc_blocks=(2, 4, 4), latent_blocks=6, dec_blocks=(4, 4, 2),
               refine_blocks=2, heads=(1, 2, 4, 8), ffn_expansion=4.0, emb=128),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; DampInputError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise DampInputError(
            f"Unknown model preset {name!r}; choose one of: {', '.join(PRESETS)}.") from None
