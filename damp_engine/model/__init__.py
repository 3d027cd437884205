"""The DAMP network: window-attention U-Net whose decoder experts are routed by the degradation prompt."""
from __future__ import annotations

from .network import DAMP, DampOutput, PromptEmbedding, RoutingTrace, count_parameters, model_info, prompt_features
from .presets import PRESETS, Preset, get_preset

__all__ = ["DAMP", "DampOutput", "prompt_features", "PRESETS", "Preset", "PromptEmbedding", "RoutingTrace",
           "count_parameters", "get_preset", "model_info"]
