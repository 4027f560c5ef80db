"""Shared test configuration for tests/.

The environment of the test run (progress bars off, no paper scale) is set in
the root ``conftest.py`` so that it reaches the notebooks' kernels as well.
"""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``gpu`` when no CUDA device is present."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is available")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root, which is also the book root."""
    return ROOT
