"""``recforge init``: guess the columns of an interaction file and write a starter config."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from recforge.exceptions import ConfigError

_ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "user": (
        "userid",
        "user",
        "uid",
        "customerid",
        "customer",
        "visitorid",
        "memberid",
        "clientid",
        "accountid",
        "reviewerid",
        "sessionid",
    ),
    "item": (
        "itemid",
        "item",
        "iid",
        "movieid",
        "movie",
        "productid",
        "product",
        "sku",
        "articleid",
        "trackid",
        "songid",
        "bookid",
        "asin",
        "isbn",
        "contentid",
    ),
    "value": (
        "rating",
        "ratings",
        "score",
        "value",
        "stars",
        "count",
        "clicks",
        "plays",
        "playcount",
        "quantity",
        "weight",
        "purchases",
        "views",
    ),
    "time": (
        "timestamp",
        "time",
        "ts",
        "datetime",
        "date",
        "eventtime",
        "createdat",
        "unixtime",
        "unixreviewtime",
    ),
}
_ROLE_HINTS = {
    "user": ("user", "customer", "visitor"),
    "item": ("item", "movie", "product"),
    "value": ("rating", "score"),
    "time": ("time", "date"),
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _epoch_like(col: Any) -> bool:
    import pandas as pd

    if not pd.api.types.is_integer_dtype(col) and not pd.api.types.is_float_dtype(col):
        return False
    vals = col.dropna()
    return bool(len(vals)) and bool(((vals > 3e8) & (vals < 5e9)).mean() > 0.99)


def guess_columns(frame: Any) -> tuple[dict[str, str | None], list[str]]:
    """Guess the user, item, value and time columns of an interaction table.

    Names are matched first (``userId``, ``movie_id``, ``rating``, ``timestamp``, ...), then
    dtypes (datetimes or epoch-second integers for time, a numeric column with few distinct
    values for ratings, the first remaining columns for ids).

    Returns
    -------
    columns : dict
        ``{"user": ..., "item": ..., "value": ... or None, "time": ... or None}``.
    notes : list of str
        One sentence per guess saying how it was made.

    Raises
    ------
    ConfigError
        If no user or item column can be told apart.
    """
    import pandas as pd

    cols = [str(c) for c in frame.columns]
    taken: set[str] = set()
    found: dict[str, str | None] = {}
    notes: list[str] = []
    for role in ("user", "item", "time", "value"):
        names = _ROLE_NAMES[role]
        exact = [c for c in cols if c not in taken and _norm(c) in names]
        loose = [
            c for c in cols if c not in taken and any(h in _norm(c) for h in _ROLE_HINTS[role])
        ]
        pick: str | None = (exact or loose or [None])[0]  # type: ignore[list-item]
        if pick is not None:
            found[role] = pick
            taken.add(pick)
            notes.append(f"{role}: column {pick!r} (by its name)")
    if "time" not in found:
        for c in cols:
            if c in taken:
                continue
            col = frame[c]
            if pd.api.types.is_datetime64_any_dtype(col) or _epoch_like(col):
                found["time"] = c
                taken.add(c)
                notes.append(f"time: column {c!r} (its values look like dates)")
                break
    for role in ("user", "item"):
        if role in found:
            continue
        rest = [c for c in cols if c not in taken]
        if not rest:
            raise ConfigError(
                f"cannot tell which column holds the {role} ids (columns: {', '.join(cols)}); "
                f"write data.columns.{role} in the config yourself"
            )
        found[role] = rest[0]
        taken.add(rest[0])
        notes.append(f"{role}: column {rest[0]!r} (first unused column; check it)")
    if "value" not in found:
        for c in cols:
            col = frame[c]
            if c in taken or not pd.api.types.is_numeric_dtype(col):
                continue
            if pd.api.types.is_bool_dtype(col) or col.nunique() > 50:
                continue
            found["value"] = c
            taken.add(c)
            notes.append(f"value: column {c!r} (numeric with few distinct values)")
            break
    for role in ("value", "time"):
        if role not in found:
            found[role] = None
            what = (
                "implicit feedback (every interaction counts 1)"
                if role == "value"
                else ("no timestamps (random split)")
            )
            notes.append(f"{role}: none found, so {what}")
    return found, notes


def starter_config(
    data: str | Path, *, config_dir: str | Path | None = None
) -> tuple[str, list[str]]:
    """A commented ``recforge.yaml`` for a CSV or Parquet interaction file.

    Parameters
    ----------
    data
        The interaction file.
    config_dir
        Directory the config will be written to (the data path is written relative to it).

    Returns
    -------
    text : str
        YAML with comments.
    notes : list of str
        What was guessed and how.

    Raises
    ------
    ConfigError
        If the file is missing or of an unsupported type.
    """
    path = Path(data)
    source, frame = _read_sample(path)
    cols, notes = guess_columns(frame)
    base = Path(config_dir) if config_dir is not None else Path(".")
    rel = Path(os.path.relpath(path.resolve(), base.resolve()))
    return _starter_text(path, rel, source, cols, notes), notes


#: Rows of the data file read to guess its columns.
_SAMPLE_ROWS = 20_000


def _read_sample(path: Path) -> tuple[str, Any]:
    """``(source kind, first rows)`` of a CSV or Parquet interaction file."""
    import pandas as pd

    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith(".parquet") or suffix.endswith(".pq"):
        return "parquet", pd.read_parquet(path).head(_SAMPLE_ROWS)
    if suffix.endswith((".csv", ".tsv", ".csv.gz", ".txt")):
        frame = pd.read_csv(
            path,
            nrows=_SAMPLE_ROWS,
            sep=None if suffix.endswith(".txt") else ",",
            engine="python" if suffix.endswith(".txt") else "c",
        )
        return "csv", frame
    raise ConfigError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def _split_section(has_time: bool) -> str:
    if has_time:
        return (
            "split:                      # newest 20% of each user's items are the test set\n"
            "  method: temporal\n  per_user_last: 0.2\n  valid_size: 0.1\n"
        )
    return (
        "split:                      # 20% of each user's items are the test set\n"
        "  method: user_random\n  test_size: 0.2\n  valid_size: 0.1\n"
    )


def _yaml_scalar(name: str | None) -> str:
    return "null" if name is None else yaml.safe_dump(name).splitlines()[0]


def _starter_text(
    path: Path, rel: Path, source: str, cols: dict[str, str | None], notes: list[str]
) -> str:
    """The commented YAML of :func:`starter_config`."""
    opt = _yaml_scalar
    explicit = cols["value"] is not None
    split = _split_section(cols["time"] is not None)
    feedback = "explicit ratings" if explicit else "implicit feedback"
    rating_model = "  svd: {search: default}      # rating model (matrix factorisation)\n"
    return (
        f"# recforge run configuration, generated by 'recforge init' from {path.name}.\n"
        f"# Guessed columns: {'; '.join(notes)}.\n"
        "# Check them, then run:  recforge run recforge.yaml\n"
        f"name: {_norm(path.stem) or 'run'}\n"
        "seed: 42\n\n"
        "data:\n"
        f"  source: {source}\n"
        f"  path: {opt(str(rel))}\n"
        "  columns:\n"
        f"    user: {opt(cols['user'])}\n"
        f"    item: {opt(cols['item'])}\n"
        f"    value: {opt(cols['value'])}        # {feedback}; null = implicit\n"
        f"    time: {opt(cols['time'])}\n"
        "  # item_attributes: {path: items.csv, key: item_id}\n\n"
        "prepare:                     # run in order; see recforge.data.prepare\n"
        "  - {step: deduplicate, policy: last}\n\n"
        f"{split}\n"
        "models:                      # {search: default} tunes the model's default space;\n"
        "  popular: {}                # or values / {type: int, low: 1, high: 9, log: true}\n"
        "  itemknn: {search: default}\n"
        "  ease: {search: default}\n"
        "  als: {search: default}\n"
        f"{rating_model if explicit else ''}\n"
        "tuning:\n"
        "  sampler: tpe\n"
        "  n_trials: 20               # per tuned model\n"
        "  timeout: 5m                # per tuned model\n"
        "  pruning: true\n"
        "  metric: ndcg\n"
        "  k: 10\n\n"
        "evaluation:\n"
        "  metrics: [ndcg, recall, precision, map, coverage, novelty, popularity]\n"
        "  k: [5, 10, 20]\n\n"
        "significance:\n"
        "  alpha: 0.05\n"
        "  tests: [t-test, wilcoxon]\n\n"
        "output:\n"
        f"  dir: runs/{_norm(path.stem) or 'run'}\n"
    )
