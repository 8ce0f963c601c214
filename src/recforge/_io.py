"""File helpers shared by every layer: atomic writes, JSON-ready values, arrays of sparse matrices.

This module sits below ``data/`` and imports nothing else from recforge but its exceptions,
so any layer can use it.

- :func:`atomic_open` / :func:`atomic_write`: readers see either the old file or the complete
  new one. The data goes to a temporary file in the same directory, is flushed and fsynced,
  moved into place with :func:`os.replace`, and the directory is fsynced so the rename itself
  survives a crash. A failure before the rename removes the temporary file and leaves the old
  file as it was.
- :func:`jsonable`: numpy scalars, NaN/inf (as ``None``), ``pd.NA`` and paths made JSON-ready.
- :func:`csr_state` / :func:`csr_from_state`: a CSR matrix as plain arrays for ``.npz`` files
  (``<prefix>_indptr``, ``_indices``, ``_data`` and ``_shape``), read back with validation.
  Files written before the shape was stored still load when the caller gives the shape.
- :func:`check_state_shape`: fetch one array of such a file and check its shape and dtype.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath
from typing import IO, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge.exceptions import ModelFormatError

__all__ = [
    "atomic_open",
    "atomic_write",
    "check_state_shape",
    "csr_from_state",
    "csr_state",
    "fsync_dir",
    "fsync_file",
    "jsonable",
]


# --------------------------------------------------------------------------- atomic writes
def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's content to disk."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory entry table to disk (makes a rename inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[IO[bytes]]:
    """Binary file handle whose content replaces ``path`` only when the block succeeds.

    Parameters
    ----------
    path
        Target file; its directory is created when missing.
    suffix
        End of the temporary file's name (``.tmp-<name>-<random><suffix>`` beside ``path``).

    Yields
    ------
    IO[bytes]
        The temporary file, open for writing.

    Notes
    -----
    On success the file is flushed, fsynced, renamed over ``path`` and the directory is
    fsynced. If the block raises, the temporary file is removed, ``path`` is untouched and
    the exception propagates.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".tmp-{target.name}-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; see :func:`atomic_open`."""
    payload = data if isinstance(data, bytes) else data.encode("utf-8")
    with atomic_open(path) as fh:
        fh.write(payload)


# --------------------------------------------------------------------------- JSON
def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars, NaN/inf (as ``None``), ``pd.NA`` and paths made JSON-ready.

    Mappings get string keys, tuples become lists; other values are returned unchanged.

    Examples
    --------
    >>> jsonable({"a": np.float32(0.5), 1: (float("nan"), PurePath("x"))})
    {'a': 0.5, '1': [None, 'x']}
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is pd.NA:
        return None
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


# --------------------------------------------------------------------------- arrays
def check_state_shape(
    state: Mapping[str, np.ndarray], name: str, shape: tuple[int | None, ...], dtype: Any = None
) -> np.ndarray:
    """Fetch ``state[name]`` and check its shape (``None`` = any) or raise ModelFormatError."""
    if name not in state:
        raise ModelFormatError(f"model arrays are missing {name!r}")
    arr = state[name]
    if arr.ndim != len(shape) or any(
        s is not None and s != d for s, d in zip(shape, arr.shape, strict=True)
    ):
        raise ModelFormatError(f"model array {name!r} has shape {arr.shape}, expected {shape}")
    if dtype is not None and arr.dtype != np.dtype(dtype):
        raise ModelFormatError(f"model array {name!r} has dtype {arr.dtype}, expected {dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ModelFormatError(f"model array {name!r} contains NaN or infinite values")
    return arr


def csr_state(prefix: str, m: sp.csr_array, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """Arrays of a CSR matrix for an ``.npz`` file.

    Parameters
    ----------
    prefix
        Key prefix: the arrays are ``<prefix>_indptr`` (int64), ``<prefix>_indices`` (int32),
        ``<prefix>_data`` (``dtype``) and ``<prefix>_shape`` (int64, two entries).
    m
        The matrix (CSR).
    dtype
        Dtype of the stored values.
    """
    return {
        f"{prefix}_indptr": np.asarray(m.indptr, dtype=np.int64),
        f"{prefix}_indices": np.asarray(m.indices, dtype=np.int32),
        f"{prefix}_data": np.asarray(m.data, dtype=dtype),
        f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64),
    }


def csr_from_state(
    state: Mapping[str, np.ndarray],
    prefix: str,
    shape: tuple[int, int] | None = None,
    dtype: Any = np.float32,
) -> sp.csr_array:
    """Rebuild a CSR matrix saved by :func:`csr_state`, validating every array.

    Parameters
    ----------
    state
        The arrays of the file.
    prefix
        Key prefix given to :func:`csr_state`.
    shape
        Expected shape. Required for files written without ``<prefix>_shape`` (older
        formats); when both are present they must agree.
    dtype
        Expected dtype of the values.

    Raises
    ------
    ModelFormatError
        If an array is missing, mis-shaped or inconsistent, or a column index is out of range.
    """
    if f"{prefix}_shape" in state:
        stored = check_state_shape(state, f"{prefix}_shape", (2,), np.int64)
        saved = (int(stored[0]), int(stored[1]))
        if shape is not None and saved != tuple(shape):
            raise ModelFormatError(
                f"sparse matrix {prefix!r} has shape {saved}, expected {tuple(shape)}"
            )
        shape = saved
    elif shape is None:
        raise ModelFormatError(f"model arrays are missing {prefix + '_shape'!r}")
    n, m = shape
    indptr = check_state_shape(state, f"{prefix}_indptr", (n + 1,), np.int64)
    indices = check_state_shape(state, f"{prefix}_indices", (None,), np.int32)
    data = check_state_shape(state, f"{prefix}_data", (indices.size,), dtype)
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
        raise ModelFormatError(f"sparse matrix {prefix!r} has an inconsistent index pointer")
    if indices.size and (indices.min() < 0 or indices.max() >= m):
        raise ModelFormatError(f"sparse matrix {prefix!r} has column indices out of range")
    return sp.csr_array((data, indices, indptr), shape=(n, m))
