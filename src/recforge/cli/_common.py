"""Helpers shared by the CLI commands: consoles, data loading, model specs, tables.

Only light modules are imported at module level so ``recforge --help`` stays fast; pandas,
numpy-heavy code and the models are imported inside the functions that need them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recforge.exceptions import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from recforge.data import Dataset
    from recforge.models.base import Recommender

__all__ = [
    "build_model",
    "console",
    "err_console",
    "frame_table",
    "load_data",
    "parse_model_spec",
    "parse_value",
]

#: Column names tried, in order, when a file's user/item/value/time column is not given.
COLUMN_GUESSES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "userId", "uid", "customer_id", "visitorid"),
    "item": ("item", "item_id", "itemid", "itemId", "movieId", "movie_id", "product_id", "iid"),
    "value": ("value", "rating", "score", "weight", "count", "quantity"),
    "time": ("time", "timestamp", "ts", "datetime", "date", "event_time", "created_at"),
}

_PARQUET_SUFFIXES = (".parquet", ".pq")


def console() -> Console:
    """Console on standard output (resolved at call time, so test runners can capture it).

    Output that is not a terminal (a pipe, a file) is laid out 160 columns wide rather than
    rich's default of 80, so that metric tables are not truncated.
    """
    import sys

    from rich.console import Console

    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, width=width)


def err_console() -> Console:
    """Console on standard error, for errors and progress."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


# --------------------------------------------------------------------------- data
def _columns_of(path: Path, sep: str) -> list[str]:
    import pandas as pd

    try:
        if path.suffix.lower() in _PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names]
        return [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read the header: {exc}") from exc


def _guess(columns: list[str], role: str, given: str | None, required: bool) -> str | None:
    if given is not None:
        if given not in columns:
            raise DataError(f"--{role} {given!r}: no such column (columns: {', '.join(columns)})")
        return given
    lower = {c.lower(): c for c in columns}
    for cand in COLUMN_GUESSES[role]:
        if cand.lower() in lower:
            return lower[cand.lower()]
    if required:
        raise DataError(
            f"cannot tell which column holds the {role} ids (columns: {', '.join(columns)}); "
            f"name it with --{role}"
        )
    return None


def load_data(
    source: str,
    *,
    user: str | None = None,
    item: str | None = None,
    value: str | None = None,
    time: str | None = None,
    sep: str = ",",
) -> Dataset:
    """Load a named data set (``recforge datasets list``) or a CSV/TSV/Parquet file.

    Parameters
    ----------
    source
        Data set name (e.g. ``movielens-small``) or path of a file.
    user, item, value, time
        Column names. When not given, common names are tried (``user``, ``userId``,
        ``rating``, ``timestamp``...); without a value column the data is implicit, without
        a time column it has no timestamps.
    sep
        Field separator of text files.

    Raises
    ------
    DataError
        If the source is neither a known data set nor an existing file, or a column is
        missing.
    """
    from recforge.data.datasets import REGISTRY, load

    path = Path(source).expanduser()
    if source in REGISTRY and not path.exists():
        if any(c is not None for c in (user, item, value, time)):
            raise ConfigError(f"column options apply to files only; {source!r} is a named data set")
        return load(source)
    if not path.exists():
        import difflib

        near = difflib.get_close_matches(source, list(REGISTRY), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise DataError(
            f"{source!r} is neither a file nor a known data set{hint} "
            f"(data sets: {', '.join(REGISTRY)})"
        )
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give the interactions file")
    columns = _columns_of(path, sep)
    kw: dict[str, Any] = {
        "user": _guess(columns, "user", user, True),
        "item": _guess(columns, "item", item, True),
        "value": _guess(columns, "value", value, False),
        "time": _guess(columns, "time", time, False),
    }
    from recforge.data import Dataset

    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return Dataset.from_parquet(path, **kw)
    return Dataset.from_csv(path, sep=sep, **kw)


# --------------------------------------------------------------------------- models
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null"}


def parse_value(text: str, kind: type | None, nullable: bool = False) -> Any:
    """Convert ``text`` to ``kind`` (int, float, bool, str), or guess the type when ``None``.

    Raises
    ------
    ValueError
        If the text is not a valid ``kind``.
    """
    low = text.strip().lower()
    if low in _NONE and (nullable or kind is None):
        return None
    if kind is bool:
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected true/false")
    if kind is int:
        number = float(text)
        if not number.is_integer():
            raise ValueError("expected an integer")
        return int(number)
    if kind is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    if kind is str:
        return text
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if low in _TRUE | _FALSE:
        return low in _TRUE
    return text


def parse_model_spec(spec: str) -> tuple[str, type[Recommender], dict[str, Any]]:
    """Parse ``NAME[:key=val,key=val]`` into the model class and typed parameters.

    Values are converted with the model's declared :class:`~recforge.models.Param` kinds
    (``true``/``false`` for bools, ``none`` where allowed).

    Raises
    ------
    ConfigError
        On an unknown model, a malformed ``key=val``, an unknown key (the message lists the
        valid ones) or a value of the wrong type.
    """
    from recforge.models import model_class

    name, _, rest = spec.strip().partition(":")
    if not name:
        raise ConfigError(f"model spec {spec!r} has no model name (form: NAME[:key=val,...])")
    try:
        cls = model_class(name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]) if exc.args else str(exc)) from None
    valid = cls.param_names()
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"model {name!r}: expected key=val, got {part!r}")
        if key not in valid:
            import difflib

            near = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(
                f"model {name!r} has no parameter {key!r}{hint} "
                f"(parameters: {', '.join(valid) or 'none'})"
            )
        decl = cls.params.get(key)
        try:
            params[key] = parse_value(
                raw, decl.kind if decl else None, bool(decl and decl.nullable)
            )
        except ValueError as exc:
            expected = decl.describe() if decl else "a value"
            raise ConfigError(
                f"model {name!r}: parameter {key!r} must be {expected}; got {raw!r} ({exc})"
            ) from None
    return name.lower(), cls, params


def build_model(spec: str) -> tuple[str, Recommender]:
    """Instantiate a model from ``NAME[:key=val,...]``; returns ``(label, model)``."""
    name, cls, params = parse_model_spec(spec)
    model = cls(**params)
    label = name if not params else f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})"
    return label, model


# --------------------------------------------------------------------------- tables
def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.4g}"
    try:
        import pandas as pd

        if value is pd.NA:
            return "-"
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pass
    return str(value)


def frame_table(
    frame: pd.DataFrame, *, title: str | None = None, digits: int = 4, index: bool = True
) -> Table:
    """A rich table of a DataFrame (floats rounded to ``digits``)."""
    from rich.table import Table

    table = Table(title=title)
    if index:
        table.add_column(str(frame.index.name or ""), style="bold")
    from pandas.api.types import is_numeric_dtype

    for col in frame.columns:
        numeric = is_numeric_dtype(frame[col]) and frame[col].dtype != bool
        table.add_column(str(col), justify="right" if numeric else "left")
    for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = [_cell(v.item() if hasattr(v, "item") else v, digits) for v in row]
        table.add_row(*([str(idx)] if index else []), *cells)
    return table


def load_model_source(
    model: Path | None, registry: Path | None, version: str | None
) -> tuple[Recommender, Any]:
    """A saved model (path) or a registered version (default: the active one).

    Returns
    -------
    (model, VersionInfo or None)
    """
    from recforge.models import Recommender
    from recforge.registry import ModelRegistry

    if (model is None) == (registry is None):
        raise ConfigError("give either a saved MODEL path or --registry")
    if registry is None:
        assert model is not None
        return Recommender.load(model), None
    reg = ModelRegistry(registry)
    chosen = version or reg.active_version()
    if chosen is None:
        raise ConfigError(f"{registry}: no active version (pass --version)")
    return reg.load(chosen)
