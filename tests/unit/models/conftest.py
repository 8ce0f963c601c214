"""Fixtures shared by the model tests."""

from __future__ import annotations

from collections.abc import Iterator

import numba
import pytest


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run the test with one numba thread (sequential, deterministic kernels)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)
