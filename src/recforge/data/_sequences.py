"""Sequence files: one user per line, that user's items in the order they happened.

``read_sequences`` turns such a file into a :class:`~recforge.data.Dataset` whose ``time``
column is synthetic, so that every splitter and model that orders by time keeps the file's
order; :func:`user_sequences` is the ordered view the sequential models train on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from recforge.data._dataset import Dataset
from recforge.data._io import _check_file
from recforge.exceptions import DataError

__all__ = ["read_sequences", "user_sequences"]


def _lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the sequence file ({exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not valid UTF-8 text") from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines end the file; blank lines inside it are errors
    if not lines:
        raise DataError(f"{path}: the sequence file is empty (no users)")
    return lines


def _as_ids(tokens: list[str]) -> np.ndarray:
    """Integer ids when every token is an integer, else the tokens as strings."""
    arr = np.asarray(tokens, dtype=str)
    try:
        return arr.astype(np.int64)
    except (ValueError, OverflowError):
        return arr.astype(object)


def read_sequences(
    path: str | Path,
    *,
    users: Literal["line", "first"] = "line",
    name: str | None = None,
) -> Dataset:
    """Read a sequence file: one user per line, items separated by whitespace, oldest first.

    Parameters
    ----------
    path
        The text file (UTF-8).
    users
        ``"line"``: the user id is the 1-based line number (every token is an item);
        ``"first"``: the first token of each line is the user id.
    name
        Name of the dataset; defaults to the file name.

    Returns
    -------
    Dataset
        Implicit interactions (value 1.0) whose ``time`` is the interaction's position in
        the file (0, 1, 2, ...), so each user's items are strictly increasing in time and
        time-ordered splits (``leave_one_out``, ``temporal``) keep the file's order. Item
        (and user) ids are integers when every token is an integer, else strings.

    Raises
    ------
    DataError
        If the file is missing, empty or not UTF-8, a line inside it is blank, a line has
        no item, or (``users="first"``) a user id repeats. The message names the file and
        the 1-based line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "seq.txt"
    >>> _ = p.write_text("1 2 3\\n3 1\\n")
    >>> ds = read_sequences(p)
    >>> ds
    Dataset(name='seq.txt', users=2, items=3, interactions=5, time=True)
    >>> indptr, seq = ds.sequences()
    >>> [ds.items.ids_of(seq[a:b]).tolist() for a, b in zip(indptr[:-1], indptr[1:])]
    [[1, 2, 3], [3, 1]]
    """
    if users not in ("line", "first"):
        raise DataError(f"users must be 'line' or 'first'. Got {users!r} instead.")
    p = _check_file(path, "sequence")
    lines = _lines(p)
    tokens = [line.split() for line in lines]
    skip = 1 if users == "first" else 0
    for number, toks in enumerate(tokens, start=1):
        if len(toks) <= skip:
            what = "is blank" if not toks else f"has a user id ({toks[0]!r}) but no items"
            raise DataError(f"{p}: line {number} {what}; every line needs at least one item")
    lengths = np.fromiter((len(t) - skip for t in tokens), dtype=np.int64, count=len(tokens))
    if users == "first":
        user_ids = _as_ids([t[0] for t in tokens])
        dup = pd.Index(user_ids).duplicated()
        if dup.any():
            second = int(np.flatnonzero(dup)[0])
            first = int(np.flatnonzero(user_ids == user_ids[second])[0])
            raise DataError(
                f"{p}: line {second + 1} repeats user id {user_ids[second]!r} "
                f"of line {first + 1}; a user's items belong on one line"
            )
        item_tokens = [tok for t in tokens for tok in t[1:]]
    else:
        user_ids = np.arange(1, len(tokens) + 1, dtype=np.int64)
        item_tokens = [tok for t in tokens for tok in t]
    frame = pd.DataFrame(
        {
            "user": np.repeat(user_ids, lengths),
            "item": _as_ids(item_tokens),
            "time": np.arange(int(lengths.sum()), dtype=np.int64),
        }
    )
    return Dataset.from_frame(frame, time="time", name=name or p.name, source=str(p))


def user_sequences(
    user: np.ndarray, item: np.ndarray, time: np.ndarray | None, n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's item codes in time order, ties broken by row order (CSR layout).

    Parameters
    ----------
    user, item
        Parallel int32 code arrays.
    time
        int64 times, or ``None`` to keep row order.
    n_users
        Number of users (rows of the result).

    Returns
    -------
    (indptr int64 of shape (n_users + 1,), items int32)
        ``items[indptr[u]:indptr[u + 1]]`` is user ``u``'s sequence, oldest first.
    """
    rows = np.arange(user.shape[0], dtype=np.int64)
    keys = (rows, user) if time is None else (rows, time, user)
    order = np.lexsort(keys)
    counts = np.bincount(user, minlength=n_users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, np.ascontiguousarray(item[order], dtype=np.int32)
