"""Helpers shared by the PyTorch models (SASRec, MultVAE); torch is imported lazily.

Importing this module never imports torch: :func:`require_torch` does, raising
:class:`~recforge.exceptions.MissingDependencyError` with the install command when it is
absent. Learned parameters travel as plain NumPy arrays (``state_arrays`` /
``load_state_arrays``), so saved models stay JSON + ``.npz`` without pickle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from recforge.exceptions import MissingDependencyError, ModelFormatError

__all__ = [
    "INSTALL_HINT",
    "load_state_arrays",
    "require_torch",
    "seeded",
    "state_arrays",
    "threads_of",
]

INSTALL_HINT = "pip install 'recforge[deep]'"


def require_torch(owner: str) -> Any:
    """The ``torch`` module, or :class:`MissingDependencyError` naming the install command."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"{owner} needs PyTorch, which is not installed. Install it with: {INSTALL_HINT}"
        ) from exc
    return torch


@contextmanager
def seeded(seed: int, threads: int | None) -> Iterator[None]:
    """Run a block with torch's CPU generator seeded and (optionally) ``threads`` threads.

    The global generator and thread count are restored afterwards, so a fit does not
    disturb other torch code in the process. One thread gives bit-identical results.
    """
    import torch

    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)


@contextmanager
def threads_of(threads: int | None) -> Iterator[None]:
    """Run a block with ``threads`` torch threads (``None``: leave the setting alone)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def state_arrays(module: Any, prefix: str) -> dict[str, np.ndarray]:
    """A module's parameters and buffers as float32 NumPy arrays keyed ``prefix + name``."""
    return {
        prefix + name: tensor.detach().cpu().numpy().astype(np.float32, copy=True)
        for name, tensor in module.state_dict().items()
    }


def load_state_arrays(module: Any, state: Mapping[str, np.ndarray], prefix: str) -> None:
    """Copy ``prefix + name`` arrays into ``module``; a missing or misshapen one raises.

    Raises
    ------
    ModelFormatError
        If an array is missing, has another shape, or is not a finite float array.
    """
    import torch

    target = module.state_dict()
    loaded = {}
    for name, tensor in target.items():
        key = prefix + name
        if key not in state:
            raise ModelFormatError(f"missing model array {key!r}")
        arr = np.asarray(state[key])
        if arr.shape != tuple(tensor.shape):
            raise ModelFormatError(
                f"model array {key!r} has shape {arr.shape}, expected {tuple(tensor.shape)}"
            )
        if arr.dtype.kind != "f" or not np.isfinite(arr).all():
            raise ModelFormatError(f"model array {key!r} must hold finite floats")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not arr.flags.writeable:  # memory-mapped state: load_state_dict copies it anyway
            arr = arr.copy()
        loaded[name] = torch.from_numpy(arr)
    module.load_state_dict(loaded)
