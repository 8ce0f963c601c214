"""The immutable :class:`Dataset` of interactions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge.data._idindex import IdIndex, _as_id_array
from recforge.exceptions import DataError

if TYPE_CHECKING:
    from recforge.data._describe import DatasetSummary

__all__ = ["Columns", "Dataset"]


class Columns:
    """Column names used by recforge in long-format frames."""

    user = "user"
    item = "item"
    value = "value"
    time = "time"
    score = "score"
    rank = "rank"


def _py(x: Any) -> Any:
    """Plain Python scalar of a NumPy scalar, so messages read ``10`` not ``np.int64(10)``."""
    return x.item() if isinstance(x, np.generic) else x


def _first_bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def _is_text_source(source: str) -> bool:
    """Whether ``source`` names a delimited text file (rows are reported as line numbers)."""
    name = Path(source).name.lower()
    return any(f".{ext}" in name for ext in ("csv", "tsv")) or name.endswith((".dat", ".txt"))


def _row_label(index: pd.Index, pos: int, source: str | None) -> str:
    # CSV sources report 1-based line numbers counting the header line.
    if source and _is_text_source(source):
        return f"line {pos + 2}"
    return f"row {_py(index[pos])!r}"


def _refuse_bad_rows(
    bad: np.ndarray,
    source: str | None,
    column: str,
    what: str,
    index: pd.Index,
    values: Any = None,
) -> None:
    """Raise DataError naming the column, the first ``bad`` row and (given ``values``) its value."""
    if not bad.any():
        return
    pos = _first_bad_row(bad)
    if values is None:
        shown = ""
    else:
        shown = f" {_py(values.iloc[pos] if isinstance(values, pd.Series) else values[pos])!r}"
    raise DataError(
        f"{_where(source)}column {column!r} has {what}{shown} at {_row_label(index, pos, source)}"
    )


def _parse_time(col: pd.Series, name: str, source: str | None) -> np.ndarray:
    """Convert a time column (epoch seconds, datetimes or strings) to int64 epoch seconds."""
    _refuse_bad_rows(col.isna().to_numpy(), source, name, "a missing time", col.index)
    if pd.api.types.is_datetime64_any_dtype(col):
        ts = pd.to_datetime(col, utc=True)
        return np.asarray(ts.astype("int64") // 10 ** _unit_digits(ts), dtype=np.int64)
    if pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return np.array(col.to_numpy(), dtype=np.int64)  # a copy: the dataset owns it
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        vals = col.to_numpy(dtype=np.float64)
        _refuse_bad_rows(~np.isfinite(vals), source, name, "a non-finite time", col.index, vals)
        return vals.astype(np.int64)
    parsed = pd.to_datetime(col, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    _refuse_bad_rows(bad, source, name, "an unparseable time", col.index, col)
    return np.asarray(parsed.astype("int64") // 10 ** _unit_digits(parsed), dtype=np.int64)


def _unit_digits(ts: pd.Series) -> int:
    unit = str(getattr(ts.dtype, "unit", "ns"))
    return {"s": 0, "ms": 3, "us": 6, "ns": 9}.get(unit, 9)


def _check_ids(col: pd.Series, name: str, source: str | None) -> None:
    _refuse_bad_rows(col.isna().to_numpy(), source, name, "a missing id", col.index)


def _check_frame(frame: Any, columns: list[str | None], source: str | None) -> None:
    """A non-empty DataFrame holding every named column, or DataError."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{_where(source)}expected a pandas DataFrame, got {type(frame)!r}")
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        raise DataError(
            f"{_where(source)}interactions are missing column {missing[0]!r} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    if len(frame) == 0:
        raise DataError(f"{_where(source)}interactions are empty (no rows)")


def _parse_values(col: pd.Series, name: str, source: str | None) -> np.ndarray:
    """A value column as finite float32 (a copy), or DataError naming the first bad row."""
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        num = pd.to_numeric(col, errors="coerce")
        _refuse_bad_rows(num.isna().to_numpy(), source, name, "a non-numeric value", col.index, col)
        col = num
    if isinstance(col.dtype, np.dtype) and col.dtype.kind == "f":
        vals = col.to_numpy()
    else:
        vals = col.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        vals32 = vals.astype(np.float32)  # a copy: the dataset owns its arrays
    # checked after the cast, so float64 values beyond float32's range count as well
    _refuse_bad_rows(~np.isfinite(vals32), source, name, "a non-finite value", col.index, vals)
    return vals32


#: Interactions from which :meth:`Dataset.matrix` builds the CSR with the numba kernel.
_FAST_CSR_MIN_NNZ = 100_000

#: Integer id columns at least this long with a value range at most
#: ``_DENSE_SPAN_FACTOR * n + _DENSE_SPAN_SLACK`` are factorized with a lookup table.
_DENSE_MIN_ROWS = 100_000
_DENSE_SPAN_FACTOR = 4
_DENSE_SPAN_SLACK = 1 << 20


def _factorize_dense_ints(col: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes int32, ids int64)`` of a long integer column with a compact range, else None."""
    n = len(col)
    if n < _DENSE_MIN_ROWS or not (
        pd.api.types.is_integer_dtype(col.dtype) and isinstance(col.dtype, np.dtype)
    ):
        return None
    values = col.to_numpy()
    if values.dtype == np.uint64 and values.max() > np.iinfo(np.int64).max:
        return None
    values = values.astype(np.int64, copy=False)
    lo, hi = int(values.min()), int(values.max())
    span = hi - lo + 1
    if span > _DENSE_SPAN_FACTOR * n + _DENSE_SPAN_SLACK:
        return None
    from recforge._kernels.factorize import factorize_dense

    codes = np.empty(n, dtype=np.int32)
    uniques = np.empty(span, dtype=np.int64)
    k = factorize_dense(values, lo, span, codes, uniques)
    return codes, uniques[:k].copy()


def _factorize_ids(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Distinct normalised ids of a column (first-appearance order) and the code of each row.

    Factorizes the column itself (fast for Arrow strings and integers) and normalises only
    the distinct values, so no per-row Python runs.
    """
    dense = _factorize_dense_ints(col)
    if dense is not None:
        return dense[1], dense[0]
    codes, uniques = pd.factorize(col, sort=False)
    norm = _as_id_array(np.asarray(uniques))
    if not pd.Index(norm).is_unique:
        # e.g. 1 and "1" in an object column: both normalise to the id "1"
        merged, norm_unique = pd.factorize(norm, sort=False)
        codes = merged[codes]
        norm = np.asarray(norm_unique, dtype=norm.dtype)
    return norm, codes


def _encode(col: pd.Series, index: IdIndex | None, what: str) -> tuple[IdIndex, np.ndarray]:
    ids, codes = _factorize_ids(col)
    if index is None:
        return IdIndex(ids), codes.astype(np.int32)
    index = index.extend(ids)
    return index, index.codes(ids, what=what)[codes]


def as_pandas(table: Any, what: str) -> pd.DataFrame:
    """A pandas view of a table from pandas, polars (eager or lazy) or Arrow.

    Any object speaking the Arrow stream protocol (``__arrow_c_stream__``: polars, pyarrow,
    DuckDB relations, ...) converts through pyarrow without a row loop.

    Raises
    ------
    DataError
        For anything else, naming ``what`` and the type given.
    """
    if isinstance(table, pd.DataFrame):
        return table
    collect = getattr(type(table), "collect", None)
    if type(table).__module__.startswith("polars") and callable(collect):
        table = table.collect()  # a polars LazyFrame: run the query plan first
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table) and callable(getattr(table, "__arrow_c_stream__", None)):
        table = pa.table(table)
    if isinstance(table, pa.Table):
        return table.to_pandas()
    raise DataError(
        f"{what} must be a pandas, polars or Arrow table, got {type(table).__module__}."
        f"{type(table).__name__}"
    )


def _attributes(table: Any, key: str | None, what: str, source: str | None) -> pd.DataFrame | None:
    if table is None:
        return None
    df = as_pandas(table, f"{what} attributes")
    if key is not None:
        if key not in df.columns:
            raise DataError(
                f"{_where(source)}{what} attributes are missing column {key!r} "
                f"(columns: {', '.join(map(str, df.columns))})"
            )
        _check_ids(df[key], key, source)
        df = df.set_index(key)
    if not df.index.is_unique:
        dup = df.index[df.index.duplicated()][0]
        pos = int(np.flatnonzero(df.index == dup)[1])
        raise DataError(
            f"{_where(source)}{what} attributes have duplicate id {_py(dup)!r} "
            f"(second occurrence at row {pos})"
        )
    df = df.copy()
    df.index = pd.Index(IdIndex(df.index.to_numpy()).ids, name=what)
    return df


@dataclass(frozen=True, eq=False)
class Dataset:
    """Immutable interactions with their id indices and optional attribute tables.

    Interactions are parallel arrays of internal codes; every public method takes and returns
    external ids. Build one with :meth:`from_frame`, :meth:`from_csv`, :meth:`from_parquet` or
    :meth:`from_sql`.

    Attributes
    ----------
    user, item : numpy.ndarray of int32
        Codes into :attr:`users` / :attr:`items`.
    value : numpy.ndarray of float32
        Interaction values (ratings, counts, or 1.0 for implicit data).
    time : numpy.ndarray of int64 or None
        Epoch seconds.
    users, items : IdIndex
        External id maps.
    item_attributes, user_attributes : pandas.DataFrame or None
        Attribute tables indexed by external id.
    name : str
        Human-readable name of the source.
    """

    user: np.ndarray
    item: np.ndarray
    value: np.ndarray
    users: IdIndex
    items: IdIndex
    time: np.ndarray | None = None
    item_attributes: pd.DataFrame | None = None
    user_attributes: pd.DataFrame | None = None
    name: str = "dataset"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = self.user.shape[0]
        for arr_name in ("item", "value"):
            if getattr(self, arr_name).shape[0] != n:
                raise DataError(f"Dataset arrays differ in length: user={n}, {arr_name}")
        if self.time is not None and self.time.shape[0] != n:
            raise DataError("Dataset arrays differ in length: time")
        if n and (self.user.min() < 0 or self.user.max() >= len(self.users)):
            raise DataError("user codes out of range of the user index")
        if n and (self.item.min() < 0 or self.item.max() >= len(self.items)):
            raise DataError("item codes out of range of the item index")
        for arr in (self.user, self.item, self.value, self.time):
            if arr is not None:
                arr.setflags(write=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame | Any,
        *,
        user: str = "user",
        item: str = "item",
        value: str | None = None,
        time: str | None = None,
        item_attributes: pd.DataFrame | Any | None = None,
        user_attributes: pd.DataFrame | Any | None = None,
        item_key: str | None = None,
        user_key: str | None = None,
        users: IdIndex | None = None,
        items: IdIndex | None = None,
        name: str | None = None,
        source: str | None = None,
    ) -> Dataset:
        """Build a Dataset from a long-format DataFrame.

        Parameters
        ----------
        frame
            One row per interaction: a pandas, polars (eager or lazy) or Arrow table.
        user, item
            Names of the user and item id columns.
        value
            Name of the value column (rating, count, weight). ``None`` gives implicit data with
            value 1.0.
        time
            Name of the time column: epoch seconds, datetimes or parseable strings.
        item_attributes, user_attributes
            Attribute tables (pandas, polars or Arrow), indexed by id or with the id in column
            ``item_key`` / ``user_key`` (tables without an index need the key).
            Attribute rows of ids without interactions are added to the id index, so those
            entities are known (cold) to content models.
        users, items
            Existing indices to extend (codes of known ids are kept), so datasets can share codes.
        name
            Name shown in summaries; defaults to ``source`` or ``"dataset"``.
        source
            File or query the frame came from; used in error messages.

        Raises
        ------
        DataError
            On missing columns, null ids, non-numeric or non-finite values, unparseable times,
            empty input or duplicate attribute ids. The message names the source, column and row.
        """
        frame = as_pandas(frame, "interactions")
        _check_frame(frame, [user, item, value, time], source)
        _check_ids(frame[user], user, source)
        _check_ids(frame[item], item, source)
        vals32 = (
            _parse_values(frame[value], value, source)
            if value is not None
            else np.ones(len(frame), dtype=np.float32)
        )
        times = _parse_time(frame[time], time, source) if time is not None else None

        iattr = _attributes(item_attributes, item_key, "item", source)
        uattr = _attributes(user_attributes, user_key, "user", source)

        uidx, ucodes = _encode(frame[user], users, "user")
        iidx, icodes = _encode(frame[item], items, "item")
        if uattr is not None:
            uidx = uidx.extend(uattr.index.to_numpy())
        if iattr is not None:
            iidx = iidx.extend(iattr.index.to_numpy())
        return cls(
            user=ucodes,
            item=icodes,
            value=vals32,
            time=times,
            users=uidx,
            items=iidx,
            item_attributes=iattr,
            user_attributes=uattr,
            name=name or (Path(source).name if source else "dataset"),
        )

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: Any) -> Dataset:
        """Read interactions from a CSV file; see :func:`recforge.data.read_csv`."""
        from recforge.data._io import read_csv

        return read_csv(path, **kwargs)

    @classmethod
    def from_parquet(cls, path: str | Path, **kwargs: Any) -> Dataset:
        """Read interactions from a Parquet file; see :func:`recforge.data.read_parquet`."""
        from recforge.data._io import read_parquet

        return read_parquet(path, **kwargs)

    @classmethod
    def from_sql(cls, url: str, query: str, **kwargs: Any) -> Dataset:
        """Read interactions with a SQL query; see :func:`recforge.data.read_sql`."""
        from recforge.data._io import read_sql

        return read_sql(url, query, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def n_users(self) -> int:
        """Number of users in the index (including users without interactions)."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items in the index (including items without interactions)."""
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        """Number of interactions."""
        return int(self.user.shape[0])

    def __len__(self) -> int:
        return self.n_interactions

    @property
    def has_time(self) -> bool:
        """Whether interactions carry timestamps."""
        return self.time is not None

    @property
    def is_implicit(self) -> bool:
        """Whether every value is 1 (pure implicit feedback)."""
        if "implicit" not in self._cache:
            self._cache["implicit"] = bool(np.all(self.value == 1.0))
        return bool(self._cache["implicit"])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"interactions={self.n_interactions}, time={self.has_time})"
        )

    # ------------------------------------------------------------------ views
    def matrix(self, *, binary: bool = False, dtype: Any = np.float32) -> sp.csr_array:
        """User x item interaction matrix (CSR, sorted indices, duplicates summed).

        Parameters
        ----------
        binary
            Put 1.0 for every observed pair instead of the value.
        dtype
            Data type of the values.
        """
        key = f"matrix:{binary}:{np.dtype(dtype).str}"
        cached = self._cache.get(key)
        if cached is None:
            data = np.ones_like(self.value, dtype=dtype) if binary else self.value.astype(dtype)
            shape = (self.n_users, self.n_items)
            if data.shape[0] >= _FAST_CSR_MIN_NNZ and data.dtype in (np.float32, np.float64):
                from recforge._kernels.csr import coo_to_csr

                indptr, indices, vals = coo_to_csr(
                    self.user, self.item, data, self.n_users, self.n_items
                )
                m = sp.csr_array((vals, indices, indptr), shape=shape, dtype=dtype)
            else:
                m = sp.csr_array((data, (self.user, self.item)), shape=shape, dtype=dtype)
                m.sum_duplicates()
                m.sort_indices()
            if binary:
                m.data[:] = 1
            m.indptr = m.indptr.astype(np.int64)
            m.indices = m.indices.astype(np.int32)
            cached = m
            self._cache[key] = cached
        return cached.copy()

    def to_frame(self) -> pd.DataFrame:
        """Interactions as a long DataFrame with external ids (columns from :class:`Columns`)."""
        data: dict[str, Any] = {
            Columns.user: self.users.ids_of(self.user),
            Columns.item: self.items.ids_of(self.item),
            Columns.value: self.value,
        }
        if self.time is not None:
            data[Columns.time] = self.time
        return pd.DataFrame(data)

    def subset(self, rows: np.ndarray) -> Dataset:
        """Dataset with the selected interactions (boolean mask or positions); indices shared."""
        rows = np.asarray(rows)
        return Dataset(
            user=self.user[rows].copy(),
            item=self.item[rows].copy(),
            value=self.value[rows].copy(),
            time=None if self.time is None else self.time[rows].copy(),
            users=self.users,
            items=self.items,
            item_attributes=self.item_attributes,
            user_attributes=self.user_attributes,
            name=self.name,
        )

    def with_interactions(
        self,
        user: np.ndarray,
        item: np.ndarray,
        value: np.ndarray,
        time: np.ndarray | None = None,
        *,
        name: str | None = None,
    ) -> Dataset:
        """New Dataset with other interaction arrays (codes) and the same indices/attributes."""
        return Dataset(
            user=np.ascontiguousarray(user, dtype=np.int32),
            item=np.ascontiguousarray(item, dtype=np.int32),
            value=np.ascontiguousarray(value, dtype=np.float32),
            time=None if time is None else np.ascontiguousarray(time, dtype=np.int64),
            users=self.users,
            items=self.items,
            item_attributes=self.item_attributes,
            user_attributes=self.user_attributes,
            name=name or self.name,
        )

    def concat(self, other: Dataset) -> Dataset:
        """Interactions of both datasets (which must share indices)."""
        if other.users is not self.users and other.users != self.users:
            raise DataError("cannot concatenate datasets with different user indices")
        if other.items is not self.items and other.items != self.items:
            raise DataError("cannot concatenate datasets with different item indices")
        time = None
        if self.time is not None and other.time is not None:
            time = np.concatenate([self.time, other.time])
        return self.with_interactions(
            np.concatenate([self.user, other.user]),
            np.concatenate([self.item, other.item]),
            np.concatenate([self.value, other.value]),
            time,
        )

    def sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Each user's item codes in time order (ties and untimed data: row order).

        Returns
        -------
        (indptr int64 of shape (n_users + 1,), items int32)
            ``items[indptr[u]:indptr[u + 1]]`` is user ``u``'s sequence, oldest first; a
            repeated interaction appears once per row. Computed once and cached (read-only).
        """
        cached = self._cache.get("sequences")
        if cached is None:
            from recforge.data._sequences import user_sequences

            cached = user_sequences(self.user, self.item, self.time, self.n_users)
            for arr in cached:
                arr.setflags(write=False)
            self._cache["sequences"] = cached
        return cached[0], cached[1]

    def user_counts(self) -> np.ndarray:
        """Interactions per user code."""
        return np.bincount(self.user, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Interactions per item code."""
        return np.bincount(self.item, minlength=self.n_items)

    def fingerprint(self) -> str:
        """SHA-256 of the interactions and ids: equal data gives an equal fingerprint."""
        if "fingerprint" not in self._cache:
            h = hashlib.sha256()
            for arr in (self.user, self.item, self.value, self.time):
                if arr is not None:
                    h.update(np.ascontiguousarray(arr).tobytes())
            for idx in (self.users, self.items):
                h.update(idx.to_array().tobytes())
            self._cache["fingerprint"] = h.hexdigest()
        return str(self._cache["fingerprint"])

    def describe(self) -> DatasetSummary:
        """Summary statistics; see :class:`recforge.data.DatasetSummary`."""
        from recforge.data._describe import describe

        return describe(self)
