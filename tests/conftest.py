"""Shared fixtures: the real NASA data (skipped when absent), a shared local Ray runtime."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Caches (weights, feasibility answers) go to a fresh folder, never the user's ~/.cache; set
# before any Ray runtime starts so that its workers inherit it.
os.environ.setdefault("MICROSWEEP_CACHE", tempfile.mkdtemp(prefix="microsweep-test-cache-"))
# Plans count weights to download as fine (no network probe); the offline refusal is tested
# with MICROSWEEP_OFFLINE=1 / offline=True (tests/test_weights.py).
os.environ.setdefault("MICROSWEEP_OFFLINE", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MICROSWEEP_SHARED_DATA", REPO.parent / "shared" / "data"))
NASA = SHARED_DATA / "nasa-benchmark"


@pytest.fixture(scope="session")
def nasa_root() -> Path:
    """``../shared/data/nasa-benchmark``; tests using it skip cleanly when it is absent."""
    if not (NASA / "Super1").is_dir():
        pytest.skip(f"real data not found at {NASA}")
    return NASA


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray runtime for the whole session (2 CPUs, dashboard off)."""
    ray = pytest.importorskip("ray")
    from search.launch import start_ray

    start_ray(None, num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture
def fresh_ray():
    """No Ray before the test (it starts its own) and none after it."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()
