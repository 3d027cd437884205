"""Training: a few steps on small real rasters, resume, fine-tune, cancel, and the loss falling on a
fixed batch."""
from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from damp_engine.checkpoint import load_model
from damp_engine.errors import DampCancelled, DampInputError
from damp_engine.finetune import finetune
from damp_engine.model import DAMP, get_preset
from damp_engine.train import AUX_WEIGHT, TrainConfig, batch_loss, make_sample, train
from helpers import smooth_cube, tiny_model_file, write_raster


@pytest.fixture
def data(tmp_path, sample_raster):
    folder = tmp_path / "data"
    folder.mkdir()
    write_raster(folder / "synthetic.tif", smooth_cube(31, 48, 48))
    (folder / "sample.tif").write_bytes(sample_raster.read_bytes())
    return folder


def config(data, out, steps: int) -> TrainConfig:
    return TrainConfig(data=[str(data)], out=str(out), steps=steps, batch=2, crop=32, warmup=2,
                       prompt_samples=16, checkpoint_minutes=1e9)


def log_steps(out) -> list[int]:
    with open(out.with_name(out.stem + ".log.csv"), newline="") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh)]


def test_training_writes_weights_card_and_log(tmp_path, data):
    out = tmp_path / "run" / "m.safetensors"
    train(config(data, out, steps=3), log=lambda _: None)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["steps_done"] == 3
    assert {d["file"] for d in card["training"]["data"]} == {"synthetic.tif", "sample.tif"}
    assert all(len(d["sha256"]) == 64 for d in card["training"]["data"])
    assert set(card["prompt_ranges"]) == {"clean", "degraded"}
    assert log_steps(out) == [1, 2, 3]
    assert load_model(out, device="cpu").net.preset.name == "tiny"


def test_resume_continues_from_the_checkpoint(tmp_path, data):
    out = tmp_path / "m.safetensors"
    train(config(data, out, steps=2), log=lambda _: None)
    first = load_model(out, device="cpu").net.state_dict()
    train(config(data, out, steps=4), resume=True, log=lambda _: None)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["steps_done"] == 4
    assert log_steps(out) == [1, 2, 3, 4]
    resumed = load_model(out, device="cpu").net.state_dict()
    assert any(not torch.equal(first[k], resumed[k]) for k in first)


def test_training_loss_is_logged_and_plausible(tmp_path, data):
    out = tmp_path / "m.safetensors"
    train(config(data, out, steps=3), log=lambda _: None)
    with open(out.with_name("m.log.csv"), newline="") as fh:
        losses = [float(row["loss"]) for row in csv.DictReader(fh)]
    assert all(0 < v < 1 for v in losses)


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    """The training loss and its gradients fit: the trainer's step (its loss, AdamW at its learning
    rate and weight decay, gradient clipping) repeated on one fixed batch of two noisy crops lowers
    the loss by more than a tenth within 40 steps, the last steps against the first."""
    torch.manual_seed(0)
    net = DAMP(get_preset("tiny")).train()
    samples = [make_sample(smooth_cube(31, 32, 32, seed=s), "gaussian_noise", {"sigma": 30}, seed=s) for s in (0, 1)]
    defaults = TrainConfig(data=[], out="")
    optimizer = torch.optim.AdamW(net.parameters(), lr=defaults.lr, weight_decay=defaults.weight_decay)
    losses = []
    for _ in range(40):
        fit, aux = batch_loss(net, samples)
        optimizer.zero_grad(set_to_none=True)
        (fit + AUX_WEIGHT * aux).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        losses.append(fit.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, losses


def test_finetune_writes_a_model_that_loads(tmp_path, data):
    base = tiny_model_file(tmp_path / "base.safetensors", evaluation={"tasks": ["of the base model"]})
    lines = []
    out = finetune([str(data / "synthetic.tif")], str(tmp_path / "mine.safetensors"), base=str(base),
                   steps=2, batch=2, crop=32, log=lines.append)
    loaded = load_model(out, device="cpu")
    card = loaded.card
    assert card["fine_tuned_from"] == str(base)
    assert "evaluation" not in card and card["name"] == "mine"
    assert card["training"]["out"] == str(tmp_path / "mine.safetensors")  # not the staging folder
    check = card["fine_tune_check"]
    assert check["raster"] == "synthetic.tif" and 10 < check["psnr_base"] < 100 and 10 < check["psnr_fine_tuned"] < 100
    assert any(line.startswith("step 1 of 2: loss") for line in lines)
    assert any("with the base model" in line and "with the fine-tuned one" in line for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.json", "base.safetensors", "data",
                                                          "mine.json", "mine.safetensors"]


def test_cancelled_finetune_writes_nothing(tmp_path, data):
    base = tiny_model_file(tmp_path / "base.safetensors")
    with pytest.raises(DampCancelled):
        finetune([str(data / "synthetic.tif")], str(tmp_path / "mine.safetensors"), base=str(base),
                 steps=5, batch=2, crop=32, cancelled=lambda: True, log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.json", "base.safetensors", "data"]


def test_missing_training_data_is_a_clear_error(tmp_path):
    with pytest.raises(DampInputError, match="not found"):
        train(config(tmp_path / "nowhere", tmp_path / "m.safetensors", steps=1), log=lambda _: None)


def test_background_batches_equal_the_inline_ones(tmp_path, data):
    from dataclasses import replace

    from damp_engine.train import BatchStream
    from damp_engine.training_data import list_rasters, load_scene

    cfg = config(data, tmp_path / "m.safetensors", steps=3)
    files = list_rasters(cfg.data)
    scenes = [load_scene(f, 3, cfg.crop) for f in files]
    inline = BatchStream(cfg, files, scenes, first=1)
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    background = BatchStream(replace(cfg, loader_workers=1), files, scenes, first=1)
    try:
        for step in (1, 2):
            a, b = inline.batch(step), background.batch(step)
            assert all(torch.equal(x.inputs, y.inputs) and torch.equal(x.clean, y.clean) for x, y in zip(a, b))
        # the batch makers run one BLAS thread unless the user chose; the training process is left as it was
        blas = background.pool.apply(os.getenv, ("OPENBLAS_NUM_THREADS",))
        assert blas == os.environ.get("OPENBLAS_NUM_THREADS", "1") and os.environ.get("OPENBLAS_NUM_THREADS") == before
    finally:
        background.close()


def test_a_training_sample_is_prepared_as_a_tile_is_restored():
    """Training and restoration share one path: the sample's network input is `network_input`'s."""
    import numpy as np

    from damp_engine.train import make_sample

    clean = smooth_cube(40, 32, 32)
    sample = make_sample(clean, "band_loss", {"fraction": 0.2}, seed=3)
    assert sample.inputs.shape == (33, 32, 32)
    lost = ~sample.valid.reshape(40, -1).any(dim=1)
    assert int(lost.sum()) == 8 and np.isnan(sample.basis.noise_sigma[lost.numpy()]).all()
    assert torch.equal(sample.clean, torch.from_numpy(clean))


def test_a_training_scene_fills_incomplete_pixels_with_each_bands_median_over_complete_ones(tmp_path):
    import numpy as np

    from damp_engine.raster import RasterReader
    from damp_engine.scaling import measure_scaling
    from damp_engine.training_data import load_scene

    cube = smooth_cube(6, 40, 40, seed=4)
    cube[2, 5:9, 3] = np.nan
    cube[4, 20, 10:30] = np.nan
    path = write_raster(tmp_path / "gaps.tif", cube)
    with RasterReader(path) as reader:
        factor = measure_scaling(reader).factor
    scaled = cube / factor
    complete = np.isfinite(cube).all(axis=0)
    expected = np.where(complete, scaled, np.median(scaled[:, complete], axis=1)[:, None, None]).astype(np.float32)
    assert np.array_equal(load_scene(path, 3, 32).cube, expected)
