"""Model files: safetensors weights + JSON card, loaded without unpickling and checked against the card."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from damp_engine.checkpoint import (CARD_VERSION, DEFAULT_MODEL, default_model_path, load_model,
                                    resolve_device, save_checkpoint)
from damp_engine.errors import DampInputError
from damp_engine.model import DAMP, PRESETS, Preset, get_preset


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[DAMP, Path]:
    torch.manual_seed(0)
    net = DAMP(get_preset("tiny")).eval()
    net.set_prompt_normalisation([0.1, 0.5, 0.01, 0.02, 0.05, 0.9], [0.05, 0.2, 0.01, 0.01, 0.03, 0.1])
    path = save_checkpoint(net, tmp_path_factory.mktemp("model") / "damp_test.safetensors",
                           {"name": "test model", "training": {"steps": 3}})
    return net, path


def copy_with_card(saved_path: Path, folder: Path, edit) -> Path:
    """Copy the saved model into ``folder`` with its card changed by ``edit(card)``."""
    target = folder / saved_path.name
    target.write_bytes(saved_path.read_bytes())
    card = json.loads(saved_path.with_suffix(".json").read_text())
    edit(card)
    target.with_suffix(".json").write_text(json.dumps(card))
    return target


class Payload:
    """Unpickling this creates ``marker``: proof that a file was (not) unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_round_trip_gives_identical_outputs(saved):
    net, path = saved
    loaded = load_model(path, device="cpu")
    x = torch.rand(2, 33, 32, 32)
    prompt = torch.rand(2, 6)
    with torch.no_grad():
        assert torch.equal(loaded.net(x, prompt).components, net(x, prompt).components)
    assert not loaded.net.training
    assert loaded.device == torch.device("cpu")
    assert loaded.name == "test model"
    assert torch.equal(loaded.net.dp_scale, net.dp_scale)


def test_card_describes_the_model(saved):
    _, path = saved
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["format"] == "damp-model" and card["card_version"] == CARD_VERSION
    assert card["preset"] == get_preset("tiny").to_dict()
    assert card["components"] == 16
    assert card["prompt_metrics"] == ["hfer", "stu", "scm", "scs", "gstd", "scc"]
    assert card["prompt_normalisation"]["shift"] == pytest.approx([0.1, 0.5, 0.01, 0.02, 0.05, 0.9])
    assert card["training"] == {"steps": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == ["damp_test.json", "damp_test.safetensors"]


def test_custom_preset_is_rebuilt_from_the_card(tmp_path):
    custom = Preset(name="custom", components=12, dim=8, enc_blocks=(1,), latent_blocks=1, dec_blocks=(1,),
                    refine_blocks=0, heads=(1, 2), ffn_expansion=1.5, emb=16, experts=3, top_k=1)
    path = save_checkpoint(DAMP(custom), tmp_path / "custom.safetensors", {})
    assert load_model(path, device="cpu").net.preset == custom


def test_card_of_another_preset_is_refused(saved, tmp_path):
    _, path = saved
    tampered = copy_with_card(path, tmp_path, lambda card: card.update(preset=PRESETS["small"].to_dict()))
    with pytest.raises(DampInputError, match="weights don't match"):
        load_model(tampered, device="cpu")


def test_card_with_another_component_count_is_refused(saved, tmp_path):
    _, path = saved
    tampered = copy_with_card(path, tmp_path, lambda card: card.update(components=50))
    with pytest.raises(DampInputError, match="50"):
        load_model(tampered, device="cpu")


def test_preset_with_another_component_count_is_refused(saved, tmp_path):
    _, path = saved

    def fifty_components(card):
        card["preset"]["components"] = card["components"] = 50

    with pytest.raises(DampInputError, match="50-component preset 'tiny'"):
        load_model(copy_with_card(path, tmp_path, fifty_components), device="cpu")


def test_a_version_2_model_is_refused_with_what_to_do(saved, tmp_path):
    """Models of the v1 design (31-band windows, card version 2) do not load into v2."""
    _, path = saved

    def version_2(card):
        card["card_version"] = 2
        card["preset"]["bands"] = card["bands"] = 31

    with pytest.raises(DampInputError, match="version 2.*update the DAMP plugin"):
        load_model(copy_with_card(path, tmp_path, version_2), device="cpu")


def test_card_of_another_format_or_version_is_refused(saved, tmp_path):
    _, path = saved
    for folder, edit in (("format", lambda card: card.update(format="something-else")),
                         ("version", lambda card: card.update(card_version=CARD_VERSION + 1))):
        (tmp_path / folder).mkdir()
        with pytest.raises(DampInputError, match=folder):
            load_model(copy_with_card(path, tmp_path / folder, edit), device="cpu")


def test_missing_card_is_refused(saved, tmp_path):
    _, path = saved
    lonely = tmp_path / path.name
    lonely.write_bytes(path.read_bytes())
    with pytest.raises(DampInputError, match="damp_test.json"):
        load_model(lonely, device="cpu")


def test_missing_weights_are_refused(tmp_path):
    with pytest.raises(DampInputError, match="No model file"):
        load_model(tmp_path / "absent.safetensors", device="cpu")


def test_pickle_files_are_refused_without_unpickling(saved, tmp_path):
    _, path = saved
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Payload(marker))
    as_pt = tmp_path / "model.pt"
    as_pt.write_bytes(payload)
    as_pt.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    disguised = tmp_path / "disguised.safetensors"
    disguised.write_bytes(payload)
    disguised.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    for candidate in (as_pt, disguised):
        with pytest.raises(DampInputError):
            load_model(candidate, device="cpu")
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: unpickling it would have left the marker
    assert marker.exists()


def test_save_wants_a_safetensors_name(saved, tmp_path):
    net, _ = saved
    with pytest.raises(DampInputError, match="safetensors"):
        save_checkpoint(net, tmp_path / "model.pt", {})


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda"}
    with pytest.raises(DampInputError, match="auto"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(DampInputError, match="cpu"):
        resolve_device("cuda")


def test_default_model_is_bundled_and_overridable(monkeypatch, tmp_path):
    monkeypatch.delenv("DAMP_MODEL", raising=False)
    assert default_model_path() == DEFAULT_MODEL
    assert DEFAULT_MODEL.parent.parts[-2:] == ("resources", "models")
    monkeypatch.setenv("DAMP_MODEL", str(tmp_path / "mine.safetensors"))
    assert default_model_path() == tmp_path / "mine.safetensors"
