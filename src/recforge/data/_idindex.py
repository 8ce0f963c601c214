"""Mapping between external ids and contiguous internal codes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from recforge.exceptions import DataError, UnknownIdError

__all__ = ["IdIndex"]


#: Stand-in code of a string id looked up in an integer index (matches no real id).
_NO_INT = -(2**62)


#: Text of an integer id in its one spelling: ``0``, or an optional minus sign and 1 to 19
#: ASCII digits without leading zeros (range checked after). One id has one text, so no two
#: texts (``"1"``, ``"01"``) name the same id.
_INT_TEXT = r"0|-?[1-9][0-9]{0,18}"
_INT64_MAX = 2**63 - 1


def _parse_int_text(texts: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(values int64, ok bool)``: which texts spell an int64; see ``IdIndex.parse_int_ids``."""
    col = pd.Series(np.asarray(texts, dtype=object).reshape(-1), dtype=object)
    is_str = np.fromiter((isinstance(x, str) for x in col), dtype=bool, count=len(col))
    ok = np.zeros(len(col), dtype=bool)
    if is_str.any():
        ok[is_str] = col[is_str].str.fullmatch(_INT_TEXT).to_numpy(dtype=bool)
    values = np.zeros(len(col), dtype=np.int64)
    if ok.any():
        text = col[ok]
        long = (text.str.len() - text.str.startswith("-").astype(int)).to_numpy() == 19
        where = np.flatnonzero(ok)
        short = where[~long]
        values[short] = text[~long].astype(np.int64).to_numpy()
        for j, t in zip(where[long], text[long].tolist(), strict=True):  # may overflow int64
            v = int(t)
            if -_INT64_MAX - 1 <= v <= _INT64_MAX:
                values[j] = v
            else:
                ok[j] = False
    return values, ok


def _scalar(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _as_id_array(ids: Any) -> np.ndarray:
    """Normalise ids to an int64 array when they are integral, else an object array of str."""
    if isinstance(ids, IdIndex):
        return ids.ids
    arr = np.asarray(list(ids) if not hasattr(ids, "__len__") else ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "b":
        raise DataError("ids must be integers or strings, got booleans")
    if arr.dtype.kind == "f":
        if arr.size and not np.all(np.isfinite(arr)):
            raise DataError("ids must not be NaN or infinite")
        if arr.size == 0 or np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
        raise DataError("ids must be integers or strings, got non-integral floats")
    out = np.empty(arr.shape[0], dtype=object)
    out[:] = [str(x) for x in arr.tolist()]
    return out


class IdIndex:
    """Bidirectional map from external ids (int or str) to contiguous ``int32`` codes.

    Code ``i`` is the position of an id in :attr:`ids`. Indices are immutable; use
    :meth:`extend` to get a new index with more ids appended (existing codes unchanged).

    Parameters
    ----------
    ids
        Unique external ids, in code order.

    Raises
    ------
    DataError
        If ``ids`` contains duplicates.

    Examples
    --------
    >>> idx = IdIndex(["a", "b", "c"])
    >>> idx.codes(["c", "a"]).tolist()
    [2, 0]
    >>> idx.ids_of([1]).tolist()
    ['b']
    """

    __slots__ = ("_ids", "_lookup")

    def __init__(self, ids: Iterable[Any] | np.ndarray) -> None:
        arr = _as_id_array(ids)
        lookup = pd.Index(arr)
        if not lookup.is_unique:
            dup = lookup[lookup.duplicated()][0]
            raise DataError(f"IdIndex ids must be unique; {_scalar(dup)!r} appears more than once")
        arr.setflags(write=False)
        self._ids = arr
        self._lookup = lookup

    @classmethod
    def from_values(cls, values: Any) -> tuple[IdIndex, np.ndarray]:
        """Build an index of the distinct values in order of first appearance.

        Returns
        -------
        index, codes
            The index and the ``int32`` code of every value.
        """
        arr = _as_id_array(values)
        codes, uniques = pd.factorize(arr, sort=False)
        return cls(np.asarray(uniques, dtype=arr.dtype)), codes.astype(np.int32)

    @property
    def ids(self) -> np.ndarray:
        """External ids in code order (read-only array)."""
        return self._ids

    @property
    def is_integer(self) -> bool:
        """Whether the ids are integers (else strings)."""
        return self._ids.dtype.kind in "iu"

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __contains__(self, item: object) -> bool:
        try:
            return bool(self._lookup.get_indexer(self._coerce([item]))[0] >= 0)
        except DataError:
            return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdIndex):
            return NotImplemented
        return len(self) == len(other) and bool(np.array_equal(self._ids, other._ids))

    def __hash__(self) -> int:
        return hash((len(self), self._ids[:8].tobytes() if self.is_integer else None))

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._ids[:3].tolist())
        more = ", ..." if len(self) > 3 else ""
        return f"IdIndex([{head}{more}], n={len(self)})"

    def codes(
        self, ids: Any, *, missing: Literal["raise", "negative"] = "raise", what: str = "id"
    ) -> np.ndarray:
        """Codes of external ids.

        Parameters
        ----------
        ids
            One id or a sequence of ids.
        missing
            ``"raise"`` raises :class:`UnknownIdError` for an unknown id; ``"negative"``
            returns ``-1`` for it.
        what
            Name of the entity used in error messages (``"user"``, ``"item"``).
        """
        arr = self._coerce(ids)
        codes = self._lookup.get_indexer(arr).astype(np.int32)
        if missing == "raise" and codes.size and codes.min() < 0:
            pos = np.flatnonzero(codes < 0)[0]
            given = [ids] if isinstance(ids, str | int | np.integer) else ids
            bad = _as_id_array(given)[pos]  # as given (a text, not its stand-in code)
            raise UnknownIdError(
                f"unknown {what} id {_scalar(bad)!r}: it was not in the training data"
            )
        return codes

    def _coerce(self, ids: Any) -> np.ndarray:
        if isinstance(ids, str | int | np.integer):
            ids = [ids]
        arr = _as_id_array(ids)
        # Compare like with like: str ids never match int ids and vice versa.
        if self.is_integer and arr.dtype == object:
            values, ok = _parse_int_text(arr)
            values[~ok] = _NO_INT
            return values
        elif not self.is_integer and arr.dtype.kind in "iu":
            out = np.empty(arr.shape[0], dtype=object)
            out[:] = [str(x) for x in arr.tolist()]
            arr = out
        return arr

    @staticmethod
    def parse_int_ids(texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Integer ids spelled as text, the one rule for ids from HTTP, events and files.

        A text is an integer id when it is the id's one decimal spelling: ``0``, or an
        optional ``-`` followed by ASCII digits without a leading zero, with a value that fits
        in int64. So ``"7"`` is 7, while ``"007"``, ``"-0"``, ``" 7"``, ``"+7"``, ``"7.0"``,
        ``"1_000"``, ``"²"`` and ``"١"`` (digits ``int()`` or ``str.isdigit`` accept) are not
        integer ids: no two texts name the same id.

        Parameters
        ----------
        texts
            Id texts.

        Returns
        -------
        values, ok
            ``int64`` values (0 where not an id) and whether each text is an integer id.

        Examples
        --------
        >>> values, ok = IdIndex.parse_int_ids(["12", "-3", "x", "99999999999999999999"])
        >>> values[ok].tolist(), ok.tolist()
        ([12, -3], [True, True, False, False])
        """
        return _parse_int_text(list(texts))

    def ids_from_text(self, texts: Iterable[str]) -> list[Any]:
        """External ids given as text (e.g. from HTTP) in this index's type.

        Texts that cannot be ids of this index (not an integer, see :meth:`parse_int_ids`,
        in an index of integer ids) are dropped; the ids need not be in the index.
        """
        texts = list(texts)
        if not self.is_integer:
            return texts
        values, ok = _parse_int_text(texts)
        return values[ok].tolist()

    def codes_from_text(self, texts: Iterable[str]) -> np.ndarray:
        """``int32`` codes of ids given as text; ``-1`` for unknown ids and non-ids.

        Uses the same rule as :meth:`ids_from_text`.
        """
        texts = list(texts)
        if not texts:
            return np.full(0, -1, dtype=np.int32)
        if not self.is_integer:
            return np.asarray(self.codes(texts, missing="negative"), dtype=np.int32)
        values, ok = _parse_int_text(texts)
        out = np.full(len(texts), -1, dtype=np.int32)
        if ok.any():
            out[ok] = self._lookup.get_indexer(values[ok])
        return out

    def ids_of(self, codes: Any) -> np.ndarray:
        """External ids of internal codes."""
        c = np.asarray(codes, dtype=np.int64)
        if c.size and (c.min() < 0 or c.max() >= len(self)):
            raise IndexError(f"code out of range [0, {len(self)})")
        return self._ids[c]

    def extend(self, ids: Any) -> IdIndex:
        """New index with the ids not already present appended (existing codes unchanged).

        Raises
        ------
        DataError
            If a non-integer string is added to an index of integer ids.
        """
        if len(self) == 0:
            return IdIndex(pd.unique(_as_id_array(ids)))
        if self.is_integer:
            raw = _as_id_array(ids)
            if raw.dtype == object:
                ok = _parse_int_text(raw)[1]
                if not ok.all():
                    bad = raw[np.flatnonzero(~ok)[0]]
                    raise DataError(f"cannot add id {bad!r} to an index of integer ids")
        arr = self._coerce(ids)
        new = arr[self._lookup.get_indexer(arr) < 0]
        if new.size == 0:
            return self
        new = pd.unique(new)
        return IdIndex(np.concatenate([self._ids, np.asarray(new, dtype=self._ids.dtype)]))

    def to_array(self) -> np.ndarray:
        """Ids as an array safe to store without pickle (int64 or unicode)."""
        if self.is_integer:
            return np.asarray(self._ids, dtype=np.int64)
        return np.asarray(self._ids.tolist(), dtype=np.str_) if len(self) else np.array([], "U1")

    @classmethod
    def from_array(cls, arr: np.ndarray) -> IdIndex:
        """Inverse of :meth:`to_array`."""
        return cls(arr)
