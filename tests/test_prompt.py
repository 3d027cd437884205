"""The degradation prompt measures the physics it claims, on real scenes, deterministically."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from osgeo import gdal

from damp_engine.errors import DampInputError
from damp_engine.names import METRIC_MEANINGS, METRIC_TITLES
from damp_engine.prompt import (
    METRIC_NAMES,
    compute_prompt,
    gstd,
    hfer,
    scc,
    scm,
    scs,
    stu,
)
from helpers import read_window

CROP = 128


def read_scene(shared_data: Path, name: str) -> torch.Tensor:
    """A real test scene in [0, 1], (C, H, W) float32: a centre crop of CAVE, or Samson whole."""
    path = shared_data / "test" / f"{name}.tif"
    if name.startswith("cave_"):
        offset = (gdal.Open(str(path)).RasterXSize - CROP) // 2
        return torch.from_numpy(read_window(path, offset, offset, CROP, CROP).astype(np.float32) / 65535)
    return torch.from_numpy(read_window(path).astype(np.float32))


@pytest.fixture(scope="module", params=["cave_balloons", "samson_95"])
def scene(request: pytest.FixtureRequest, shared_data: Path) -> torch.Tensor:
    return read_scene(shared_data, request.param)


def column(values: torch.Tensor, name: str) -> list[float]:
    return values[:, METRIC_NAMES.index(name)].tolist()


def strictly_increasing(sequence: list[float]) -> bool:
    return all(a < b for a, b in zip(sequence, sequence[1:]))


def gaussian_blur(cube: torch.Tensor, size: int) -> torch.Tensor:
    """Separable Gaussian blur of each band, sigma = 0.3((size-1)/2 - 1) + 0.8, reflect borders."""
    sigma = 0.3 * ((size - 1) / 2 - 1) + 0.8
    taps = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    kernel = torch.exp(-taps.square() / (2 * sigma**2))
    kernel /= kernel.sum()
    bands = cube.shape[0]
    padded = F.pad(cube[None], (size // 2,) * 4, mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, size, 1).expand(bands, 1, size, 1), groups=bands)
    return F.conv2d(rows, kernel.view(1, 1, 1, size).expand(bands, 1, 1, size), groups=bands)[0]


def test_every_metric_has_a_title_and_a_meaning() -> None:
    assert set(METRIC_TITLES) == set(METRIC_MEANINGS) == set(METRIC_NAMES)


def test_noise_raises_hfer_and_scm(scene: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(0)
    noisy = torch.stack(
        [scene + sigma / 255 * torch.randn(scene.shape, generator=generator) for sigma in (0, 10, 30, 50)]
    )
    values = compute_prompt(noisy).values
    assert strictly_increasing(column(values, "hfer"))
    assert strictly_increasing(column(values, "scm"))


def test_blur_lowers_hfer_and_gstd(scene: torch.Tensor) -> None:
    blurred = torch.stack([scene] + [gaussian_blur(scene, size) for size in (3, 9, 15)])
    values = compute_prompt(blurred).values
    assert strictly_increasing(column(values, "hfer")[::-1])
    assert strictly_increasing(column(values, "gstd")[::-1])


def test_band_loss_raises_scm_and_scs(scene: torch.Tensor) -> None:
    bands = scene.shape[0]
    lost_bands = np.random.default_rng(0).choice(bands, size=round(0.15 * bands), replace=False)
    damaged = scene.clone()
    damaged[lost_bands] = 0
    prompt = compute_prompt(torch.stack([scene, damaged]))
    clean, lost = prompt.as_dict(0), prompt.as_dict(1)
    assert lost["scm"] > clean["scm"]
    assert lost["scs"] > clean["scs"]


def test_constant_cube_gives_finite_values() -> None:
    values = compute_prompt(np.full((31, 16, 16), 0.4, dtype=np.float32)).values
    assert bool(torch.isfinite(values).all())


def test_prompt_of_a_sample_does_not_depend_on_the_batch(shared_data: Path) -> None:
    names = ("cave_balloons", "cave_thread_spools", "cave_fake_and_real_peppers")
    scenes = [read_scene(shared_data, name)[:, :64, :64] for name in names]
    batched = compute_prompt(torch.stack(scenes)).values
    alone = torch.cat([compute_prompt(cube).values for cube in scenes])
    torch.testing.assert_close(batched, alone, rtol=0, atol=1e-5)


def test_numpy_and_torch_inputs_agree(scene: torch.Tensor) -> None:
    from_numpy = compute_prompt(scene.numpy().astype(np.float64)).values
    from_torch = compute_prompt(scene).values
    torch.testing.assert_close(from_numpy, from_torch, rtol=0, atol=1e-6)


def test_prompt_is_deterministic(scene: torch.Tensor) -> None:
    noisy = scene + 0.1 * torch.randn(scene.shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(compute_prompt(noisy).values, compute_prompt(noisy).values)


def test_metric_functions_match_prompt_columns(scene: torch.Tensor) -> None:
    batch = scene[None]
    singles = torch.stack([metric(batch) for metric in (hfer, stu, scm, scs, gstd, scc)], dim=1)
    torch.testing.assert_close(singles, compute_prompt(batch).values, rtol=0, atol=0)


def test_fewer_than_three_bands_raises() -> None:
    with pytest.raises(DampInputError, match="at least 3 bands"):
        compute_prompt(np.zeros((2, 32, 32), dtype=np.float32))


def test_image_smaller_than_8_pixels_raises() -> None:
    with pytest.raises(DampInputError, match="8x8"):
        compute_prompt(np.zeros((31, 7, 32), dtype=np.float32))


def test_nan_raises() -> None:
    cube = np.full((31, 32, 32), 0.5, dtype=np.float32)
    cube[4, 10, 10] = np.nan
    with pytest.raises(DampInputError, match="NaN"):
        compute_prompt(cube)


@pytest.fixture(scope="module")
def small_cube() -> np.ndarray:
    """A non-square (5, 40, 52) float64 cube of smoothed noise: a generic test image."""
    from scipy.ndimage import uniform_filter

    noise = np.random.default_rng(2).random((5, 40, 52))
    return uniform_filter(noise, size=(1, 3, 3)) + 0.1 * noise


def test_hfer_matches_the_full_spectrum_definition(small_cube: np.ndarray) -> None:
    rows, cols = small_cube.shape[1:]
    window = np.outer(np.hanning(rows + 1)[:-1], np.hanning(cols + 1)[:-1])  # periodic Hann
    f_y, f_x = np.meshgrid(np.fft.fftfreq(rows), np.fft.fftfreq(cols), indexing="ij")
    high = np.fft.fftshift(np.hypot(f_y, f_x) > 1 / 6)
    ratios = []
    for band in small_cube:
        power = np.abs(np.fft.fftshift(np.fft.fft2((band - band.mean()) * window))) ** 2
        ratios.append(power[high].sum() / power.sum())
    assert hfer(torch.from_numpy(small_cube)[None]).item() == pytest.approx(np.mean(ratios), abs=1e-5)


def test_scm_and_scs_match_numpy_second_differences(small_cube: np.ndarray) -> None:
    curvature = np.abs(np.diff(small_cube, n=2, axis=0)).mean(axis=0)
    batch = torch.from_numpy(small_cube)[None]
    assert scm(batch).item() == pytest.approx(curvature.mean(), rel=1e-5)
    assert scs(batch).item() == pytest.approx(curvature.std(), rel=1e-4)


def test_gstd_matches_scipy_sobel(small_cube: np.ndarray) -> None:
    from scipy.ndimage import sobel

    magnitudes = [np.hypot(sobel(band, 0), sobel(band, 1))[1:-1, 1:-1] / 8 for band in small_cube]
    expected = np.mean([magnitude.std() for magnitude in magnitudes])
    assert gstd(torch.from_numpy(small_cube)[None]).item() == pytest.approx(expected, rel=1e-4)


def test_scc_matches_numpy_corrcoef(small_cube: np.ndarray) -> None:
    def lag_one_correlation(first: np.ndarray, second: np.ndarray) -> float:
        return np.corrcoef(first.ravel(), second.ravel())[0, 1]

    horizontal = [lag_one_correlation(band[:, :-1], band[:, 1:]) for band in small_cube]
    vertical = [lag_one_correlation(band[:-1], band[1:]) for band in small_cube]
    expected = (np.mean(horizontal) + np.mean(vertical)) / 2
    assert scc(torch.from_numpy(small_cube)[None]).item() == pytest.approx(expected, abs=1e-5)
