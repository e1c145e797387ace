"""Shared fixtures. Tests that read ../shared/data skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DREAMCS_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLES = REPO / "src" / "dreamcs" / "assets" / "samples"

# Fusion's kernels compile in the test process on first use, not in a background warm-up: no
# process outlives the run (tests/mesh/test_fusion_warmup.py tests the warm-up itself).
os.environ.setdefault("DREAMCS_FUSE_WARMUP", "0")

# torch reads OMP_NUM_THREADS itself (the Makefile sets it); without it, at most 2 threads.
if not os.environ.get("OMP_NUM_THREADS"):
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "meshes").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLES
