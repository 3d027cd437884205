"""The fixtures the tests share; the helpers they share are in helpers.py."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from helpers import SAMPLE, SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's real cubes (test/, test_rs/, train/, train_rs/): ../shared/data/hsi beside the
    checkout, always there; a test that needs them fails, and says where they were looked for."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared test data are missing: {SHARED_DATA} (the tests read ../shared/data/hsi beside "
                    "the checkout)")
    return SHARED_DATA


@pytest.fixture
def sample_raster() -> Path:
    return SAMPLE


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Test tensors are small: one thread beats two that contend with other work on a shared CPU."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def processing(qgis_app):
    """processing.run with the DAMP provider registered the way QGIS does it (classFactory + initProcessing)."""
    import processing as qgis_processing  # pytest-qgis puts QGIS's python/plugins on sys.path
    from processing.core.Processing import Processing

    import damp_qgis

    Processing.initialize()
    plugin = damp_qgis.classFactory(None)
    plugin.initProcessing()
    yield qgis_processing
    plugin.unload()
