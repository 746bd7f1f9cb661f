import pytest
import torch

from trainer.config import TrainConfig
from trainer.data import DataSpec, load_data


@pytest.fixture(scope="session")
def shapes():
    """A small built-in shapes set (no files, no network)."""
    return load_data(DataSpec("shapes", shapes_count=1200, seed=0))


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def fast_cfg():
    return TrainConfig(epochs=2, batch_size=64, lr=2e-3, device="cpu")
