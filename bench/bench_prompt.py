"""Time `compute_prompt` on a realistic 224-band 1000x1000 float32 cube (target: under 3 s on CPU).

The cube is seeded and hyperspectral-like: four smooth endmember spectra mixed by smooth
abundance maps, plus Gaussian noise of std 0.01. The median of 3 runs after one warm-up is
printed on one line. Run: `.venv/bin/python bench/bench_prompt.py`.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from damp_engine.prompt import compute_prompt

BANDS, SIZE, ENDMEMBERS, NOISE, RUNS, SEED = 224, 1000, 4, 0.01, 3, 0


def realistic_cube(generator: torch.Generator) -> torch.Tensor:
    """A (BANDS, SIZE, SIZE) float32 cube in about [0, 1]: linear mixing of smooth spectra."""
    coarse = torch.randn(1, ENDMEMBERS, 32, 32, generator=generator)
    abundances = F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    abundances = torch.softmax(3.0 * abundances[0], dim=0).reshape(ENDMEMBERS, -1)
    wavelength = torch.linspace(0.0, 1.0, BANDS)
    phases = torch.rand(ENDMEMBERS, 1, generator=generator) * 6.28
    amplitudes = 0.35 * torch.rand(ENDMEMBERS, 1, generator=generator)
    spectra = 0.45 + amplitudes * torch.sin(3.0 * wavelength + phases)
    cube = (spectra.T @ abundances).reshape(BANDS, SIZE, SIZE)
    return cube.add_(torch.randn(cube.shape, generator=generator), alpha=NOISE)


def main() -> None:
    """Print the median time of `compute_prompt` on the benchmark cube."""
    cube = realistic_cube(torch.Generator().manual_seed(SEED))
    compute_prompt(cube)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        compute_prompt(cube)
        times.append(time.perf_counter() - start)
    print(
        f"compute_prompt {BANDS}x{SIZE}x{SIZE} float32 on CPU ({torch.get_num_threads()} threads): "
        f"median {statistics.median(times):.2f} s over {RUNS} runs "
        f"(min {min(times):.2f}, max {max(times):.2f})"
    )


if __name__ == "__main__":
    main()
