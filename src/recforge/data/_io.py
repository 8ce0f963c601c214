"""Readers that build a :class:`~recforge.data.Dataset` from CSV, Parquet and SQL sources.

Every reader maps columns by name, reads only the columns it needs where the format allows,
and leaves validation to :meth:`Dataset.from_frame` with the file (or query) as ``source``, so
errors name the file, the column and the first offending row (a 1-based line number for CSV).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from recforge.data._dataset import Dataset, _is_text_source, _py, as_pandas
from recforge.exceptions import DataError

__all__ = ["read_csv", "read_parquet", "read_sql"]

AttributeSource = pd.DataFrame | str | Path | Any | None


def _check_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: {what} file does not exist")
    if p.is_dir():
        raise DataError(f"{p}: {what} path is a directory, expected a file")
    return p


def _wanted(*names: str | None) -> list[str]:
    out: list[str] = []
    for n in names:
        if n is not None and n not in out:
            out.append(n)
    return out


def _require_columns(source: str | Path, what: str, wanted: list[str], found: list[str]) -> None:
    """Raise :class:`DataError` naming the first of ``wanted`` missing from ``found``."""
    missing = [c for c in wanted if c not in found]
    if missing:
        raise DataError(
            f"{source}: {what} are missing column {missing[0]!r} (columns: {', '.join(found)})"
        )


def _read_attributes(table: AttributeSource, what: str, sep: str) -> pd.DataFrame | None:
    """Load an attribute table given as a DataFrame or a path (.csv[.gz] / .parquet)."""
    if table is None or isinstance(table, pd.DataFrame):
        return table
    if not isinstance(table, str | Path):
        return as_pandas(table, f"{what}_attributes (a table or a file path)")
    p = _check_file(table, f"{what} attributes")
    if p.suffix.lower() in (".parquet", ".pq"):
        import pyarrow as pa

        try:
            return pd.read_parquet(p)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{p}: cannot read {what} attributes as Parquet: {exc}") from exc
    try:
        return pd.read_csv(p, sep=sep)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{p}: {what} attributes file is empty") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{p}: cannot parse {what} attributes: {exc}") from exc


def _build(
    frame: pd.DataFrame,
    source: str,
    *,
    user: str,
    item: str,
    value: str | None,
    time: str | None,
    item_attributes: AttributeSource,
    user_attributes: AttributeSource,
    item_key: str | None,
    user_key: str | None,
    name: str | None,
    sep: str = ",",
) -> Dataset:
    iattr, item_key = _attributes(item_attributes, item_key, "item", item, sep)
    uattr, user_key = _attributes(user_attributes, user_key, "user", user, sep)
    return Dataset.from_frame(
        frame,
        user=user,
        item=item,
        value=value,
        time=time,
        item_attributes=iattr,
        user_attributes=uattr,
        item_key=item_key,
        user_key=user_key,
        name=name,
        source=source,
    )


def _attributes(
    table: AttributeSource, key: str | None, what: str, id_column: str, sep: str
) -> tuple[pd.DataFrame | None, str | None]:
    """The ``what`` attribute table and the key :meth:`Dataset.from_frame` still has to apply.

    A table read from a file is indexed and validated here, against that file, so that errors
    name the right source; a DataFrame is passed on with its ``key``.
    """
    frame = _read_attributes(table, what, sep)
    if frame is not None and isinstance(table, str | Path):
        return _keyed(frame, key, what, id_column, str(table)), None
    return frame, key


def _keyed(
    df: pd.DataFrame, key: str | None, what: str, id_column: str, source: str
) -> pd.DataFrame:
    """Index an attribute table read from ``source`` by its id column, with file-named errors.

    Without ``key`` the id column is the interactions' id column name if the table has it,
    else a column named ``what`` (``"item"`` / ``"user"``), else the first column.
    """
    if key is None:
        candidates = [c for c in (id_column, what) if c in df.columns]
        key = candidates[0] if candidates else str(df.columns[0])
    _require_columns(source, f"{what} attributes", [key], [str(c) for c in df.columns])
    ids = df[key]
    nulls = ids.isna().to_numpy()
    if nulls.any():
        pos = int(nulls.nonzero()[0][0])
        raise DataError(f"{source}: column {key!r} has a missing id at {_label(source, pos)}")
    dup = ids.duplicated().to_numpy()
    if dup.any():
        pos = int(dup.nonzero()[0][0])
        raise DataError(
            f"{source}: {what} attributes have duplicate id {_py(ids.iloc[pos])!r} in column "
            f"{key!r} at {_label(source, pos)}"
        )
    return df.set_index(key)


def read_attributes(
    path: str | Path, *, what: str = "item", key: str | None = None, sep: str = ","
) -> pd.DataFrame:
    """An attribute table (.csv[.gz] or .parquet) indexed by its id column.

    Parameters
    ----------
    path
        The file.
    what
        ``"item"`` or ``"user"``: names the table in errors and is the default id column.
    key
        Id column (default: a column named ``what``, else the first column).
    sep
        CSV field separator.

    Raises
    ------
    DataError
        Naming the file and the line of a missing or duplicate id, or a missing column.
    """
    frame = _read_attributes(Path(path), what, sep)
    assert frame is not None
    return _keyed(frame, key, what, what, str(path))


def _label(source: str, pos: int) -> str:
    if _is_text_source(source):
        return f"line {pos + 2}"
    return f"row {pos}"


def read_csv(
    path: str | Path,
    *,
    user: str = "user",
    item: str = "item",
    value: str | None = None,
    time: str | None = None,
    sep: str = ",",
    item_attributes: AttributeSource = None,
    user_attributes: AttributeSource = None,
    item_key: str | None = None,
    user_key: str | None = None,
    name: str | None = None,
    **pandas_kw: Any,
) -> Dataset:
    """Read interactions from a delimited text file (optionally compressed).

    Parameters
    ----------
    path
        The file; compression is inferred from the suffix (``.gz``, ``.zip``, ``.bz2``...).
    user, item
        Names of the user and item id columns.
    value
        Name of the value column; ``None`` reads implicit data (every value 1.0).
    time
        Name of the time column: epoch seconds or date/time strings.
    sep
        Field separator (also used for attribute tables given as CSV paths).
    item_attributes, user_attributes
        Attribute tables: a DataFrame (indexed by id or with the id in ``item_key`` /
        ``user_key``) or the path of a CSV / Parquet file whose id column is ``item_key`` /
        ``user_key`` (default: the interactions' id column name if the table has it, else
        a column named ``item`` / ``user``, else the first column).
        Ids found only there are added to the index as cold entities.
    item_key, user_key
        Id column of the attribute tables.
    name
        Name of the dataset; defaults to the file name.
    **pandas_kw
        Passed to :func:`pandas.read_csv` (e.g. ``encoding``, ``quotechar``). Id columns are
        read as pandas infers them, so ``"007"`` becomes the integer 7; pass
        ``dtype={"user": str}`` to keep such ids as strings. Line numbers in errors assume
        the header is line 1 and no lines are skipped.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        If the file is missing or empty, lacks a column, or holds a null id, a non-numeric or
        non-finite value or an unparseable time. The message names the file, the column and
        the 1-based line number (the header is line 1).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.csv"
    >>> _ = p.write_text("u,i,r\\n1,10,4.0\\n2,10,3.5\\n")
    >>> read_csv(p, user="u", item="i", value="r")
    Dataset(name='r.csv', users=2, items=1, interactions=2, time=False)
    """
    p = _check_file(path, "interactions")
    frame = _read_csv_frame(p, sep, _wanted(user, item, value, time), pandas_kw)
    return _build(
        frame,
        str(p),
        user=user,
        item=item,
        value=value,
        time=time,
        item_attributes=item_attributes,
        user_attributes=user_attributes,
        item_key=item_key,
        user_key=user_key,
        name=name,
        sep=sep,
    )


def _read_csv_frame(
    p: Path, sep: str, wanted: list[str], pandas_kw: dict[str, Any]
) -> pd.DataFrame:
    """The ``wanted`` columns of a CSV file, ids as pandas infers them (DataError naming it)."""
    # A missing column is reported with the columns that were found.
    try:
        header = pd.read_csv(p, sep=sep, nrows=0, **pandas_kw)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{p}: interactions file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot parse interactions: {exc}") from exc
    _require_columns(p, "interactions", wanted, [str(c) for c in header.columns])
    kw: dict[str, Any] = {"usecols": wanted}
    kw.update(pandas_kw)
    if "engine" not in kw and len(sep) == 1:
        kw["engine"] = "c"
    try:
        return pd.read_csv(p, sep=sep, **kw)
    except pd.errors.ParserError as exc:
        raise DataError(f"{p}: cannot parse interactions: {exc}") from exc


def read_parquet(
    path: str | Path,
    *,
    user: str = "user",
    item: str = "item",
    value: str | None = None,
    time: str | None = None,
    item_attributes: AttributeSource = None,
    user_attributes: AttributeSource = None,
    item_key: str | None = None,
    user_key: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Read interactions from a Parquet file (or a directory of Parquet files) with pyarrow.

    Only the mapped columns are read, and the table is converted column by column with
    no per-row Python, so ten million rows load in about a second.

    Parameters
    ----------
    path
        A Parquet file or a directory holding a partitioned data set.
    user, item, value, time, item_attributes, user_attributes, item_key, user_key, name
        As in :func:`read_csv`; attribute tables given as paths may be CSV or Parquet.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        If the file is missing, not Parquet, empty, lacks a column, or holds bad values; the
        message names the file, the column and the 0-based row.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: interactions file does not exist")
    wanted = _wanted(user, item, value, time)
    try:
        schema_names = pq.read_schema(p).names if p.is_file() else pq.ParquetDataset(p).schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{p}: cannot read as Parquet: {exc}") from exc
    _require_columns(p, "interactions", wanted, schema_names)
    try:
        table = pq.read_table(p, columns=wanted)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{p}: cannot read as Parquet: {exc}") from exc
    # Plain numpy-backed columns: integers and floats convert without copies per row;
    # strings become Arrow-backed pandas strings, which factorize fast.
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    return _build(
        frame,
        str(p),
        user=user,
        item=item,
        value=value,
        time=time,
        item_attributes=item_attributes,
        user_attributes=user_attributes,
        item_key=item_key,
        user_key=user_key,
        name=name,
    )


def read_sql(
    url: str,
    query: str,
    *,
    user: str = "user",
    item: str = "item",
    value: str | None = None,
    time: str | None = None,
    params: dict[str, Any] | None = None,
    item_attributes: AttributeSource = None,
    user_attributes: AttributeSource = None,
    item_key: str | None = None,
    user_key: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Read interactions with a SQL query through SQLAlchemy.

    Parameters
    ----------
    url
        SQLAlchemy database URL, e.g. ``"sqlite:///events.db"`` or
        ``"postgresql+psycopg://user@host/db"``.
    query
        A ``SELECT`` returning the mapped columns; use ``:name`` placeholders with ``params``
        for values rather than formatting them into the string.
    user, item, value, time, item_attributes, user_attributes, item_key, user_key
        As in :func:`read_csv`.
    params
        Bound parameters of the query.
    name
        Name of the dataset; defaults to ``"sql"``.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        If the database cannot be reached, the query fails, returns no rows, lacks a column or
        returns bad values; the message quotes the query and names the column and row.
    """
    import sqlalchemy as sa

    short = " ".join(query.split())
    short = short if len(short) <= 80 else short[:77] + "..."
    source = f"query {short!r}"
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise DataError(f"invalid database URL {url!r}: {exc}") from exc
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_query(sa.text(query), conn, params=params)
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) else exc
        detail = str(getattr(cause, "orig", None) or cause).splitlines()[0]
        raise DataError(f"{source} failed: {detail}") from exc
    finally:
        engine.dispose()
    return _build(
        frame,
        source,
        user=user,
        item=item,
        value=value,
        time=time,
        item_attributes=item_attributes,
        user_attributes=user_attributes,
        item_key=item_key,
        user_key=user_key,
        name=name or "sql",
    )
