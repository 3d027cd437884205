"""damp_engine.reading: what a raster's degradation reads as, and how strong it is, on held-out
real scenes (never seen by the classifier), through the files a user would give."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from damp_engine import DampCancelled, DampInputError
from damp_engine.cli import main
from damp_engine.degrade import degrade
from damp_engine.raster import RasterReader
from damp_engine.names import FAMILIES
from damp_engine.reading import PRESENT, read_cube, read_raster
from damp_engine.reading_model import DEFAULT_READING_MODEL, ReadingModel, load_reading_model
from damp_engine.scaling import measure_scaling
from helpers import ROOT, SAMPLE, write_raster

CAVE = "test/cave_fake_and_real_peppers.tif"   # held out: a lab scene, 31 bands
HYDICE = "test_rs/hydice_urban_80x100.tif"      # held out: an airborne sensor never trained on
PAVIA = "test_rs/rosis_pavia_centre_100.tif"    # held out: another one (HYDICE Urban has stripes of its own)


def counts(path: Path, window: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, float]:
    """A scene (or a window of it) in its own units, and the factor that scales it to about [0, 1]."""
    with RasterReader(path) as reader:
        factor = measure_scaling(reader).factor
        cube, _ = reader.read(*window) if window else reader.read_all()
    return cube.astype(np.float32), factor


@pytest.fixture(scope="module")
def cave(shared_data) -> tuple[np.ndarray, float]:
    return counts(shared_data / CAVE, (192, 192, 128, 128))


@pytest.fixture(scope="module")
def hydice(shared_data) -> tuple[np.ndarray, float]:
    return counts(shared_data / HYDICE)


@pytest.fixture(scope="module")
def pavia(shared_data) -> tuple[np.ndarray, float]:
    return counts(shared_data / PAVIA)


def degraded_file(folder: Path, scene: tuple[np.ndarray, float], kind: str, seed: int = 1, **params) -> Path:
    """A float32 GeoTIFF of the scene degraded by ``kind`` in its own units (as `damp degrade` writes)."""
    cube, factor = scene
    out = cube if kind == "clean" else degrade(cube / factor, kind, seed=seed, **params)[0] * np.float32(factor)
    name = kind + "".join(f"_{k}{v}" for k, v in params.items()) + f"_{seed}.tif"
    return write_raster(folder / name, out.astype(np.float32))


# ----------------------------------------------------------------------------- one test per family

FAMILY_CASES = [
    ("clean", {}, "clean"),
    ("gaussian_noise", {"sigma": 30}, "gaussian_noise"),
    ("poisson", {"scale": 30}, "signal_dependent_noise"),     # zero-shot: never in the training set
    ("gaussian_blur", {"ksize": 9}, "blur"),
    ("motion_blur", {"size": 15, "angle": 45.0}, "blur"),     # zero-shot: never in the training set
    ("sr", {"factor": 4}, "coarse_resolution"),
    ("inpaint", {"fraction": 0.7}, "missing_pixels"),
    ("band_loss", {"fraction": 0.15}, "lost_bands"),
    ("stripes", {}, "stripes"),
    ("deadlines", {}, "dead_lines"),
    ("impulse", {}, "impulse_noise"),
]


@pytest.mark.parametrize("kind, params, family", FAMILY_CASES, ids=[c[0] for c in FAMILY_CASES])
def test_each_family_reads_as_itself_on_a_held_out_lab_scene(tmp_path, cave, kind, params, family):
    assert read_raster(degraded_file(tmp_path, cave, kind, **params)).top == family


@pytest.mark.parametrize("kind, params, family", FAMILY_CASES, ids=[c[0] for c in FAMILY_CASES])
def test_each_family_reads_as_itself_on_a_held_out_airborne_scene(tmp_path, pavia, kind, params, family):
    reading = read_raster(degraded_file(tmp_path, pavia, kind, **params))
    assert reading.top == family, (reading.sentence, reading.families)


@pytest.mark.parametrize("extra, families", [("stripes", {"gaussian_noise"}),  # under σ up to 70: noise first
                                             ("deadlines", {"gaussian_noise", "dead_lines"}),
                                             ("impulse", {"gaussian_noise", "impulse_noise"})])
def test_complex_noise_reads_as_noise_and_its_extra(tmp_path, pavia, extra, families):
    reading = read_raster(degraded_file(tmp_path, pavia, "complex", extra=extra))
    assert families <= set(reading.present) and reading.top in families and "clean" not in reading.present


# ----------------------------------------------------------------------------- severities

@pytest.mark.parametrize("sigma", [10, 30, 70])
@pytest.mark.parametrize("scene", ["cave", "hydice"])
def test_noise_sigma_is_within_ten_percent_in_raster_units(tmp_path, request, scene, sigma):
    data = request.getfixturevalue(scene)
    reading = read_raster(degraded_file(tmp_path, data, "gaussian_noise", sigma=sigma))
    truth = sigma / 255 * data[1]
    assert reading.severity["noise_sigma"] == pytest.approx(truth, rel=0.10)


def test_noise_sigma_per_band_follows_non_iid_noise(tmp_path, cave):
    cube, factor = cave
    noisy, _ = degrade(cube / factor, "noniid_noise", seed=3, sigmas=[10.0, 60.0])
    applied = np.std(noisy - cube / factor, axis=(1, 2)) * factor
    reading = read_raster(write_raster(tmp_path / "noniid.tif", (noisy * factor).astype(np.float32)))
    estimated = np.array(reading.severity["noise_sigma_per_band"])
    np.testing.assert_allclose(estimated, applied, rtol=0.15)


def test_poisson_noise_grows_with_the_signal(tmp_path, cave):
    reading = read_raster(degraded_file(tmp_path, cave, "poisson", scale=30))
    assert reading.severity["signal_dependent"] is True
    assert reading.severity["noise_exponent"] > 0.5 > read_raster(
        degraded_file(tmp_path, cave, "gaussian_noise", sigma=30)).severity["noise_exponent"]


def test_lost_bands_are_listed_with_one_based_numbers(tmp_path, hydice):
    cube, factor = hydice
    lost, record = degrade(cube / factor, "band_loss", seed=5, fraction=0.1)
    reading = read_raster(write_raster(tmp_path / "lost.tif", (lost * factor).astype(np.float32)))
    assert reading.severity["lost_bands"] == [b + 1 for b in record.bands]


@pytest.mark.parametrize("factor", [2, 4])
def test_coarse_factor_is_the_replication_block(tmp_path, cave, factor):
    reading = read_raster(degraded_file(tmp_path, cave, "sr", factor=factor))
    assert reading.severity["coarse_factor"] == factor


def test_missing_fraction_is_the_share_of_zeroed_pixels(tmp_path, hydice):
    reading = read_raster(degraded_file(tmp_path, hydice, "inpaint", fraction=0.4))
    assert reading.severity["missing_fraction"] == pytest.approx(0.4, abs=0.03)


def test_blur_width_is_near_the_kernels_and_grows_with_it(tmp_path, cave):
    widths = [read_raster(degraded_file(tmp_path, cave, "gaussian_blur", ksize=k)).severity["blur_width_px"]
              for k in (9, 15)]
    truth = [2.3548 * (0.3 * ((k - 1) / 2 - 1) + 0.8) for k in (9, 15)]  # FWHM of the kernels' σ
    assert widths[0] < widths[1]
    assert widths == pytest.approx(truth, rel=0.35)


def test_stripes_name_the_striped_bands_and_their_direction(tmp_path, cave):
    cube, factor = cave
    striped, record = degrade(cube / factor, "stripes", seed=2, amplitude=0.1)
    reading = read_raster(write_raster(tmp_path / "striped.tif", (striped * factor).astype(np.float32)))
    assert reading.severity["stripe_direction"] == "vertical"
    found, applied = set(reading.severity["striped_bands"]), {b + 1 for b in record.bands}
    assert len(found & applied) >= 0.8 * len(applied) and len(found - applied) <= 0.1 * len(applied) + 1


def test_real_stripes_of_a_pushbroom_scene_are_read(hydice):
    reading = read_cube(*hydice[:1], factor=hydice[1])  # HYDICE Urban as distributed, never trained on
    assert "stripes" in reading.present and reading.severity["stripe_direction"] == "vertical"


def test_bands_without_data_are_listed_not_read_as_lost(sample_raster):
    reading = read_raster(sample_raster)  # EnMAP: bands 130-135 are nodata everywhere
    assert reading.severity["no_data_bands"] == list(range(130, 136))
    assert not reading.severity.get("lost_bands")


# ----------------------------------------------------------------------------- the reading itself

def test_probabilities_cover_every_family_and_clean_is_no_degradation(tmp_path, cave):
    reading = read_raster(degraded_file(tmp_path, cave, "gaussian_noise", sigma=20))
    assert tuple(reading.families) == FAMILIES
    assert all(0.0 <= p <= 1.0 for p in reading.families.values())
    assert reading.top == max(reading.families, key=reading.families.get)
    others = [p for f, p in reading.families.items() if f != "clean"]
    assert reading.families["clean"] == pytest.approx(float(np.prod([1 - p for p in others])))
    assert reading.present == [f for f in sorted(FAMILIES, key=lambda f: -reading.families[f])
                               if reading.families[f] >= PRESENT]


def test_the_sentence_names_the_top_family_and_its_severity(tmp_path, cave):
    reading = read_raster(degraded_file(tmp_path, cave, "gaussian_noise", sigma=30))
    assert reading.sentence.startswith("Gaussian noise (") and "σ ≈" in reading.sentence
    assert reading.sentence.endswith(".") and reading.sentence.count(". ") == 0


def test_evidence_names_metrics_outside_the_clean_range(tmp_path, cave):
    reading = read_raster(degraded_file(tmp_path, cave, "gaussian_noise", sigma=50))
    assert any(line.startswith("High-frequency energy ratio (HFER)") and "above the clean range" in line
               for line in reading.evidence)


def test_json_form_has_the_issue_keys_and_is_serialisable(tmp_path, hydice):
    data = read_raster(degraded_file(tmp_path, hydice, "band_loss", fraction=0.1)).to_dict()
    assert {"families", "top", "severity"} <= set(data)
    assert set(data["families"]) == set(FAMILIES)
    json.dumps(data, allow_nan=False)


def test_the_reading_metrics_are_the_scene_prompt(tmp_path, hydice):
    from damp_engine.scene import prompt_raster

    path = degraded_file(tmp_path, hydice, "gaussian_noise", sigma=20)
    assert read_raster(path).metrics == pytest.approx(prompt_raster(path).metrics, rel=1e-5)


def test_an_array_reads_as_its_file(tmp_path, cave):
    path = degraded_file(tmp_path, cave, "stripes")
    with RasterReader(path) as reader:
        factor = measure_scaling(reader).factor
        cube, valid = reader.read_all()
    assert read_cube(cube, valid, factor=factor).to_dict() == read_raster(path).to_dict()


def test_a_window_is_read_on_its_own(tmp_path, cave):
    cube, factor = cave
    half = cube.copy()
    half[:, :, 64:] = (degrade(cube[:, :, 64:] / factor, "gaussian_noise", seed=1, sigma=40)[0] * factor)
    path = write_raster(tmp_path / "half.tif", half.astype(np.float32))
    assert read_raster(path, window=(0, 0, 64, 128)).top == "clean"
    assert read_raster(path, window=(64, 0, 64, 128)).top == "gaussian_noise"


def test_errors_say_what_to_do(tmp_path, cave):
    path = degraded_file(tmp_path, cave, "clean")
    with pytest.raises(DampInputError, match="outside"):
        read_raster(path, window=(500, 0, 10, 10))
    with pytest.raises(DampCancelled):
        read_raster(path, cancelled=lambda: True)
    with pytest.raises(DampInputError, match="at least 3 bands"):
        read_cube(cave[0][:2])


# ----------------------------------------------------------------------------- the shipped classifier

def test_the_classifier_ships_as_json_numbers_beside_the_model_card():
    assert DEFAULT_READING_MODEL.parent == ROOT / "resources" / "models"
    raw = DEFAULT_READING_MODEL.read_bytes()
    assert not raw.startswith(b"\x80")  # not a pickle
    data = json.loads(raw)
    model = ReadingModel.from_dict(data)
    assert np.shape(model.weights) == (len(FAMILIES) - 1, len(model.features))
    assert set(data["training"]["zero_shot_never_trained"]) == {"poisson", "motion_blur"}


def test_the_classifier_never_saw_the_held_out_scenes(shared_data):
    trained = set(load_reading_model().info["scenes"])
    held_out = {p.name for folder in ("test", "test_rs") for p in (shared_data / folder).iterdir()}
    assert trained and not trained & held_out


def test_reading_needs_numpy_only_at_run_time(tmp_path, cave):
    read_raster(degraded_file(tmp_path, cave, "clean"))
    assert "sklearn" not in sys.modules


def test_a_model_of_another_format_is_refused(tmp_path):
    bad = tmp_path / "reading.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DampInputError, match="train_reading"):
        load_reading_model(bad)


# ----------------------------------------------------------------------------- training script

@pytest.fixture(scope="module")
def trainer():
    sys.path.insert(0, str(ROOT / "scripts"))
    import train_reading

    yield train_reading
    sys.path.remove(str(ROOT / "scripts"))


def test_training_samples_are_seeded(trainer, shared_data):
    scene = shared_data / "train_rs" / "aviris_moffett_50.tif"
    first, second = (trainer.samples(scene, 3, 2, seed=0) for _ in range(2))
    assert [r["features"] for r in first] == [r["features"] for r in second]
    assert all(r["scene"] == scene.name for r in first)


def test_training_never_shows_the_zero_shot_kinds(trainer):
    assert not {"poisson", "motion_blur"} & set(trainer.MIX)


def test_logistic_fit_and_platt_scaling_recover_a_known_model(trainer):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4000, 2))
    p = 1 / (1 + np.exp(-(2.0 * z[:, 0] - 1.0 * z[:, 1] + 0.5)))
    y = (rng.random(4000) < p).astype(float)
    w, b = trainer.fit_logistic(z, y, lam=1e-6)
    assert w == pytest.approx([2.0, -1.0], abs=0.2) and b == pytest.approx(0.5, abs=0.15)
    a, c = trainer.fit_platt(z @ w + b, y)
    assert a == pytest.approx(1.0, abs=0.1) and c == pytest.approx(0.0, abs=0.1)


# ----------------------------------------------------------------------------- the command line

def test_prompt_json_carries_the_reading(capsys, tmp_path, cave):
    path = degraded_file(tmp_path, cave, "gaussian_noise", sigma=30)
    assert main(["prompt", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reading"] == read_raster(path).to_dict()
    assert out["reading"]["top"] == "gaussian_noise" and "noise_sigma" in out["reading"]["severity"]
    assert {"hfer", "stu", "scm", "scs", "gstd", "scc"} <= set(out)


def test_plain_prompt_prints_the_reading_in_one_sentence_first(capsys, tmp_path, cave):
    path = degraded_file(tmp_path, cave, "sr", factor=2)
    assert main(["prompt", str(path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == read_raster(path).sentence
    assert first.startswith("Coarse resolution (") and "2 × 2" in first


def test_motion_blur_reads_as_blur_at_any_angle(tmp_path, cave):
    tops = [read_raster(degraded_file(tmp_path, cave, "motion_blur", size=15, angle=a)).top for a in (0.0, 45.0, 120.0)]
    assert tops == ["blur"] * 3


def test_sample_raster_reads_without_error():
    reading = read_raster(SAMPLE)
    assert math.isfinite(reading.probability) and reading.sentence
