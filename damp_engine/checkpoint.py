"""Model files: safetensors weights with a JSON model card beside them.

``damp_tiny.safetensors`` holds the tensors only; ``damp_tiny.json`` (same stem) is the model
card: what network to build (the full preset), the prompt normalisation, and whatever the
trainer recorded (data, steps, evaluation). Loading never unpickles anything: weights are read
with ``safetensors.torch.load_file`` and checked against the card's preset before use.

The bundled model lives in ``resources/models`` next to the ``damp_engine`` package, which is
both the repository layout and the layout inside the QGIS plugin ZIP (the plugin vendors
``damp_engine`` beside its ``resources`` folder). The environment variable ``DAMP_MODEL``
overrides it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import DampInputError
from .model import DAMP, Preset

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "resources" / "models" / "damp_tiny.safetensors"
MODEL_ENV = "DAMP_MODEL"
CARD_FORMAT = "damp-model"
CARD_VERSION = 3  # 3: v2 restoration in the scene's spectral subspace (DESIGN §4a)


def default_model_path() -> Path:
    """The model used when none is given: ``$DAMP_MODEL`` if set, else ``DEFAULT_MODEL``."""
    override = os.environ.get(MODEL_ENV)
    return Path(override).expanduser() if override else DEFAULT_MODEL


@dataclass
class LoadedModel:
    """A network ready for inference (eval mode, on ``device``) with its model card."""

    net: DAMP
    card: dict[str, Any]
    device: torch.device
    path: Path

    @property
    def name(self) -> str:
        """The card's "name", else the file's stem."""
        return str(self.card.get("name") or self.path.stem)


def resolve_device(device: str) -> torch.device:
    """The torch device for a name: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N"."""
    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DampInputError(
                "A CUDA GPU was requested but this PyTorch sees none; choose device 'cpu' or 'auto'.")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise DampInputError(
                f"There is no GPU {device!r}; this machine has {torch.cuda.device_count()} (cuda:0 ...).")
        return torch.device(name)
    raise DampInputError(f"Unknown device {device!r}; use 'auto', 'cpu' or 'cuda'.")


def save_checkpoint(net: DAMP, path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors weights) and its card ``path.with_suffix(".json")``.

    The card is ``card`` plus the entries the loader relies on, which take precedence:
    "format", "card_version", "preset" (the full preset), "components", "prompt_metrics" and
    "prompt_normalisation" {"shift", "scale"}. Both files are written atomically. Returns
    the weights path.
    """
    from .outputs import write_atomically
    from .prompt import METRIC_NAMES

    path = Path(path)
    if path.suffix != ".safetensors":
        raise DampInputError(f"Save the model as a .safetensors file, not {path.name!r}.")
    full_card = {
        **card,
        "format": CARD_FORMAT,
        "card_version": CARD_VERSION,
        "preset": net.preset.to_dict(),
        "components": net.preset.components,
        "prompt_metrics": list(METRIC_NAMES),
        "prompt_normalisation": {"shift": net.dp_shift.tolist(), "scale": net.dp_scale.tolist()},
    }
    card_text = json.dumps(full_card, indent=2) + "\n"
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": CARD_FORMAT}))
    write_atomically(path.with_suffix(".json"), lambda tmp: tmp.write_text(card_text, encoding="utf-8"))
    return path


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model card beside the weights ``path``, checked to be a DAMP card this version reads."""
    card_path = Path(path).with_suffix(".json")
    if not card_path.is_file():
        raise DampInputError(
            f"The model card {card_path.name} is missing beside {Path(path).name}; a DAMP model is a "
            ".safetensors file plus its .json card with the same name. Copy both.")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DampInputError(f"The model card {card_path} is not valid JSON ({exc}).") from exc
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise DampInputError(f"{card_path} is not a DAMP model card (its \"format\" is not {CARD_FORMAT!r}).")
    if card.get("card_version") != CARD_VERSION:
        raise DampInputError(
            f"{card_path} has model card version {card.get('card_version')!r}, but this DAMP reads "
            f"version {CARD_VERSION}; update the DAMP plugin/engine or use a model made for this version.")
    if "preset" not in card:
        raise DampInputError(f"The model card {card_path} has no \"preset\"; the card is damaged.")
    return card


def _weights_mismatch(net: DAMP, tensors: dict[str, torch.Tensor]) -> str:
    """A short description of how ``tensors`` differ from the network's state dict, or ""."""
    expected = {name: tuple(t.shape) for name, t in net.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in tensors.items()}
    problems = []
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    reshaped = sorted(n for n in expected.keys() & found.keys() if expected[n] != found[n])
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if reshaped:
        n = reshaped[0]
        problems.append(f"{len(reshaped)} with other shapes (e.g. {n}: {found[n]} instead of {expected[n]})")
    return "; ".join(problems)


def load_model(path: str | os.PathLike[str] | None = None, device: str = "auto") -> LoadedModel:
    """Load a DAMP model (weights + card) for inference; ``path`` None means ``default_model_path()``.

    Raises DampInputError for a missing file or card, a file that is not safetensors (pickled
    PyTorch files are refused unopened), a card of another format or version, or weights that
    do not fit the card's preset.
    """
    path = Path(path).expanduser() if path is not None else default_model_path()
    if not path.is_file():
        raise DampInputError(
            f"No model file at {path}. Give the path of a DAMP .safetensors model"
            f" (or set {MODEL_ENV}); the bundled model ships in resources/models.")
    if path.suffix.lower() != ".safetensors":
        raise DampInputError(
            f"{path.name} is not a .safetensors model. DAMP loads only safetensors weights with a "
            ".json card; pickled PyTorch files (.pt, .pth, .ckpt) can run code when opened and are "
            "never loaded.")
    card = read_card(path)
    preset = Preset.from_dict(card["preset"])
    if card.get("components") != preset.components:
        raise DampInputError(
            f"The model card of {path.name} says {card.get('components')!r} eigen-image components but its "
            f"preset {preset.name!r} has {preset.components}; the card was edited or belongs to another model.")
    from .prompt import METRIC_NAMES

    if card.get("prompt_metrics", list(METRIC_NAMES)) != list(METRIC_NAMES):
        raise DampInputError(
            f"{path.name} was trained on the prompt metrics {card['prompt_metrics']}, but this DAMP "
            f"computes {list(METRIC_NAMES)}; use a model made for this version.")
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error type for malformed files
        raise DampInputError(f"{path.name} is not a readable safetensors file ({exc}).") from exc
    net = DAMP(preset)
    mismatch = _weights_mismatch(net, tensors)
    if mismatch:
        raise DampInputError(
            f"This model file was built for the {preset.components}-component preset {preset.name!r} (says its card), "
            f"but its weights don't match ({mismatch}). Was it trained by another version of DAMP, "
            "or is the card from another model?")
    net.load_state_dict(tensors)
    target = resolve_device(device)
    return LoadedModel(net=net.to(target).eval(), card=card, device=target, path=path)


ModelArg = LoadedModel | str | os.PathLike | None


def as_loaded_model(model: ModelArg, device: str = "auto") -> LoadedModel:
    """The model a caller gave: a LoadedModel as it is (it runs where it was loaded), else
    ``load_model(model, device)``: a model file, or None for ``default_model_path()``."""
    return model if isinstance(model, LoadedModel) else load_model(model, device=device)
