"""Shared fixtures: the reference MovieLens data beside the project (skipped when absent)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("NUMBA_NUM_THREADS", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _numba_threads_restored() -> Iterator[None]:
    """Give every test numba's thread count back as it found it.

    Some libraries set it process-wide (ranx's ``evaluate`` leaves it at its ``threads``),
    which made later tests that compare one thread with two run on one thread only.
    """
    import numba

    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """Folder of MovieLens 100K (tests and benchmarks only; never shipped)."""
    path = SHARED_DATA / "ml-100k"
    if not (path / "ratings.csv").is_file():
        pytest.skip("MovieLens 100K not found at ../shared/data/ml-100k (reference data absent)")
    return path


@pytest.fixture(scope="session")
def ml_small_dir() -> Path:
    """Folder of the original MovieLens latest-small CSV files."""
    path = SHARED_DATA / "ml-latest-small"
    if not (path / "ratings.csv").is_file():
        pytest.skip("MovieLens latest-small not found at ../shared/data/ml-latest-small")
    return path


@pytest.fixture(scope="session")
def ml1m_seq_path() -> Path:
    """MovieLens 1M as chronological item sequences (one user per line)."""
    path = SHARED_DATA / "ml-1m-seq" / "sequences.txt"
    if not path.is_file():
        pytest.skip("MovieLens 1M sequences not found at ../shared/data/ml-1m-seq")
    return path
