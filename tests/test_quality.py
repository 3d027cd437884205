"""Specification of damp_engine.quality: the PSNR / SSIM / SAM / ERGAS conventions."""
from __future__ import annotations

import numpy as np
import pytest

from damp_engine.errors import DampInputError
from damp_engine.quality import PSNR_CAP, ergas, evaluate, psnr, sam, ssim
from helpers import read_window


@pytest.fixture(scope="module")
def clean(shared_data) -> np.ndarray:
    """A real 31×64×80 CAVE crop in [0, 1] (float64)."""
    return read_window(shared_data / "test" / "cave_fake_and_real_peppers.tif", 150, 220, 80, 64) / 65535.0


@pytest.fixture(scope="module")
def noisy(clean) -> np.ndarray:
    """The crop with Gaussian noise σ = 30/255, unclipped."""
    return clean + np.random.default_rng(0).normal(0, 30 / 255, clean.shape)


def test_psnr_equals_mean_of_scikit_image_per_band(clean, noisy):
    from skimage import metrics
    expected = np.mean([metrics.peak_signal_noise_ratio(r, e, data_range=1.0) for r, e in zip(clean, noisy)])
    assert psnr(clean, noisy) == pytest.approx(expected, abs=1e-4)


def test_ssim_equals_mean_of_scikit_image_per_band(clean, noisy):
    from skimage import metrics
    expected = np.mean([metrics.structural_similarity(r, e, data_range=1.0) for r, e in zip(clean, noisy)])
    assert ssim(clean, noisy) == pytest.approx(expected, abs=1e-4)


def test_identical_cubes_score_perfectly(clean):
    assert psnr(clean, clean) == PSNR_CAP
    assert ssim(clean, clean) == pytest.approx(1.0)
    assert sam(clean, clean) == pytest.approx(0.0, abs=1e-6)
    assert ergas(clean, clean) == 0.0


def test_sam_of_orthogonal_spectra_is_90_degrees():
    ref = np.zeros((4, 2, 2))
    est = np.zeros((4, 2, 2))
    ref[0], est[1] = 1.0, 0.5
    assert sam(ref, est) == pytest.approx(90.0)


def test_sam_ignores_the_brightness_of_a_spectrum(clean, noisy):
    scale = np.linspace(0.2, 3.0, clean.shape[1] * clean.shape[2]).reshape(clean.shape[1:])
    assert sam(clean, noisy * scale) == pytest.approx(sam(clean, noisy), abs=1e-9)


def test_sam_skips_pixels_with_zero_spectra(clean, noisy):
    est = noisy.copy()
    est[:, 0, 0] = 0
    ref_rest, est_rest = clean.reshape(31, -1)[:, 1:, None], noisy.reshape(31, -1)[:, 1:, None]
    assert sam(clean, est) == pytest.approx(sam(ref_rest, est_rest))


def test_ergas_follows_its_formula(clean, noisy):
    rmse = np.sqrt(((clean - noisy) ** 2).mean(axis=(1, 2)))
    expected = 100 / 4 * np.sqrt(np.mean((rmse / clean.mean(axis=(1, 2))) ** 2))
    assert ergas(clean, noisy, scale=4) == pytest.approx(expected)


def test_evaluate_clips_the_estimate(clean, noisy):
    assert evaluate(clean, noisy) == evaluate(clean, np.clip(noisy, 0, 1))
    assert evaluate(clean, noisy)["psnr"] > psnr(clean, noisy)


def test_evaluate_returns_the_four_metrics(clean, noisy):
    assert list(evaluate(clean, noisy)) == ["psnr", "ssim", "sam", "ergas"]


def test_evaluate_scores_only_valid_pixels(clean, noisy):
    est = noisy.copy()
    est[:, :, :10] = 5.0                         # garbage outside the valid area
    valid = np.ones(clean.shape[1:], dtype=bool)
    valid[:, :10] = False
    scores = evaluate(clean, est, valid)
    reference = evaluate(clean[:, :, 10:], noisy[:, :, 10:])
    assert scores["psnr"] == pytest.approx(reference["psnr"])
    assert scores["sam"] == pytest.approx(reference["sam"])


def test_mismatched_shapes_are_refused(clean):
    with pytest.raises(DampInputError):
        evaluate(clean, clean[:, :-1])


def test_mask_of_wrong_shape_is_refused(clean):
    with pytest.raises(DampInputError):
        evaluate(clean, clean, np.ones((3, 3), dtype=bool))


def test_empty_mask_is_refused(clean):
    with pytest.raises(DampInputError):
        evaluate(clean, clean, np.zeros(clean.shape[1:], dtype=bool))


# --- the rasters' convention: peak = the reference's maximum, both alike, nothing clipped ---------

def test_evaluate_without_clipping_scores_both_as_they_are(clean, noisy):
    scores = evaluate(clean, noisy, clip=False)
    assert scores["psnr"] == pytest.approx(psnr(clean, noisy))
    assert scores["psnr"] < evaluate(clean, noisy)["psnr"]


def test_unclipped_identical_cubes_score_exactly_the_cap(clean):
    brighter = clean * 1.7  # values above 1, which clipping only the estimate would punish
    assert evaluate(brighter, brighter, clip=False) == {"psnr": PSNR_CAP, "ssim": 1.0, "sam": 0.0, "ergas": 0.0}


def test_reference_peak_is_the_maximum_of_the_scored_samples(clean):
    from damp_engine.quality import reference_peak

    valid = np.zeros(clean.shape[1:], bool)
    valid[:10, :10] = True
    assert reference_peak(clean) == clean.max()
    assert reference_peak(clean, valid) == clean[:, :10, :10].max()


def test_reference_without_a_positive_maximum_asks_for_a_data_range(clean):
    from damp_engine.quality import reference_peak

    with pytest.raises(DampInputError, match="data range"):
        reference_peak(-clean)


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "wide"])
def test_data_range_must_be_a_positive_number(value):
    from damp_engine.quality import check_data_range

    with pytest.raises(DampInputError, match="positive number"):
        check_data_range(value)


def test_convention_sentence_states_the_peak_and_that_nothing_is_clipped():
    from damp_engine.quality import raster_convention

    text = raster_convention(65535.0, given=True)
    assert "65535" in text and "data range" in text and "neither clipped" in text
    assert "reference's maximum" in raster_convention(0.8)
