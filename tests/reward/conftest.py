"""Reward-stage fixtures: a labelled set from the sample meshes, fused once per session."""

from __future__ import annotations

import pytest
from reward_helpers import ItemsDataset, mesh_core, sample_pref_items


@pytest.fixture(scope="session")
def sample_pref(sample_dir) -> ItemsDataset:
    mesh_core()
    return ItemsDataset(sample_pref_items(sample_dir))


@pytest.fixture(autouse=True)
def _threads_from_env():
    """Honour OMP_NUM_THREADS for these tests (the top-level conftest sets 2 threads, which on a
    shared, loaded machine makes small kernels many times slower through oversubscription)."""
    import os

    import torch

    want = os.environ.get("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    if want and want.isdigit() and int(want) > 0:
        torch.set_num_threads(int(want))
    yield
    torch.set_num_threads(before)
