"""Named data sets: MovieLens latest-small shipped with recforge, verified MovieLens downloads.

``load("movielens-small")`` needs no network: the ratings, movies and tags of MovieLens
latest-small ship inside the package (with GroupLens' README as the licence). The larger
MovieLens releases are downloaded once from GroupLens into a cache directory
(``$RECFORGE_DATA`` or ``~/.cache/recforge``), atomically (a temporary file renamed into place
only after its checksum matched), and parsed from the zip on each load.

Item attributes of every MovieLens data set are indexed by movie id with the columns

``title``
    The title as published (MovieLens latest titles end with the year, e.g.
    ``"Toy Story (1995)"``).
``year``
    Release year parsed from the title (or the release date of 100K); nullable ``Int64``.
``genres``
    Genres joined with ``"|"`` in the published order, e.g. ``"Adventure|Animation"``;
    ``""`` when none is listed. Split with ``genres.str.split("|")``.
``tags``
    Distinct free-text tags users applied to the movie, joined with ``"|"`` in order of first
    use; ``""`` when none (and absent for data sets without tags: 100K, 1M).

Movies listed in the catalogue without any rating are part of the item index (cold items).
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from recforge._io import atomic_open
from recforge.data._dataset import Dataset
from recforge.exceptions import DataError

__all__ = [
    "REGISTRY",
    "DatasetInfo",
    "cache_dir",
    "fetch",
    "file_digest",
    "list_datasets",
    "load",
]

_GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
_ML_LICENCE = (
    "GroupLens research licence: non-commercial use, cite the source, redistribute only under "
    "the same conditions (README.txt in the archive)"
)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetInfo:
    """A named data set known to :func:`load`.

    Attributes
    ----------
    name : str
        Name passed to :func:`load`.
    description : str
        One line about the contents.
    n_interactions : int
        Number of ratings.
    licence : str
        Licence terms in short.
    url : str or None
        Download URL of the archive (``None`` for data shipped with recforge).
    checksum : str or None
        ``"<algorithm>:<hex digest>"`` of the archive as published by its provider
        (``None`` when no published digest is known: loading then requires ``verify=False``).
    size_bytes : int or None
        Size of the archive (approximate for downloads).
    layout : str
        Which parser reads the archive: ``"shipped"``, ``"ml-100k"``, ``"ml-dat"`` or
        ``"ml-csv"``.
    """

    name: str
    description: str
    n_interactions: int
    licence: str
    url: str | None = None
    checksum: str | None = None
    size_bytes: int | None = None
    layout: str = "ml-csv"

    @property
    def filename(self) -> str:
        """File name of the archive in the cache."""
        return self.url.rsplit("/", 1)[-1] if self.url else ""


# Digests: MD5s published by GroupLens beside each archive (<url>.md5). No digest has been
# published for ml-32m that could be checked here, so it needs verify=False.
REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "movielens-small",
            "MovieLens latest-small (2016): ratings 0.5-5, titles, genres, tags; shipped",
            100_004,
            _ML_LICENCE,
            size_bytes=None,
            layout="shipped",
        ),
        DatasetInfo(
            "movielens-100k",
            "MovieLens 100K (1998): ratings 1-5 of 943 users on 1,682 movies",
            100_000,
            _ML_LICENCE,
            _GROUPLENS + "ml-100k.zip",
            "md5:0e33842e24a9c977be4e0107933c0723",
            4_924_029,
            "ml-100k",
        ),
        DatasetInfo(
            "movielens-1m",
            "MovieLens 1M (2003): ratings 1-5 of 6,040 users on 3,706 movies",
            1_000_209,
            _ML_LICENCE,
            _GROUPLENS + "ml-1m.zip",
            "md5:c4d9eecfca2ab87c1945afe126590906",
            5_917_549,
            "ml-dat",
        ),
        DatasetInfo(
            "movielens-10m",
            "MovieLens 10M (2009): ratings 0.5-5 and tags of 71,567 users",
            10_000_054,
            _ML_LICENCE,
            _GROUPLENS + "ml-10m.zip",
            "md5:ce571fd55effeba0271552578f2648bd",
            65_566_137,
            "ml-dat",
        ),
        DatasetInfo(
            "movielens-20m",
            "MovieLens 20M (2015): ratings 0.5-5 and tags of 138,493 users",
            20_000_263,
            _ML_LICENCE,
            _GROUPLENS + "ml-20m.zip",
            "md5:cd245b17a1ae2cc31bb14903e1204af3",
            198_702_078,
            "ml-csv",
        ),
        DatasetInfo(
            "movielens-25m",
            "MovieLens 25M (2019): ratings 0.5-5 and tags of 162,541 users",
            25_000_095,
            _ML_LICENCE,
            _GROUPLENS + "ml-25m.zip",
            "md5:6b51fb2759a8657d3bfcbfc42b592ada",
            261_978_986,
            "ml-csv",
        ),
        DatasetInfo(
            "movielens-32m",
            "MovieLens 32M (2023): ratings 0.5-5 and tags of 200,948 users",
            32_000_204,
            _ML_LICENCE,
            _GROUPLENS + "ml-32m.zip",
            None,
            250_000_000,
            "ml-csv",
        ),
    )
}


def cache_dir(path: str | Path | None = None) -> Path:
    """Directory where downloaded archives are kept.

    Parameters
    ----------
    path
        Explicit directory; default ``$RECFORGE_DATA`` or else ``~/.cache/recforge``.
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("RECFORGE_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "recforge"


def _info(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DataError(f"unknown data set {name!r} (data sets: {', '.join(REGISTRY)})") from None


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - loop always returns


def list_datasets(cache: str | Path | None = None) -> pd.DataFrame:
    """Table of the named data sets.

    Parameters
    ----------
    cache
        Cache directory to look in (default :func:`cache_dir`).

    Returns
    -------
    pandas.DataFrame
        One row per data set, indexed by name, with ``description``, ``interactions``,
        ``size`` (of the download), ``licence``, ``verified`` (a published checksum is known),
        ``available`` (shipped or already in the cache) and ``path``.
    """
    root = cache_dir(cache)
    rows: list[dict[str, Any]] = []
    for info in REGISTRY.values():
        shipped = info.layout == "shipped"
        path = None if shipped else root / info.filename
        rows.append(
            {
                "name": info.name,
                "description": info.description,
                "interactions": info.n_interactions,
                "size": "shipped" if shipped else _human(info.size_bytes),
                "licence": info.licence,
                "verified": shipped or info.checksum is not None,
                "available": shipped or (path is not None and path.is_file()),
                "path": "" if path is None else str(path),
            }
        )
    return pd.DataFrame(rows).set_index("name")


# ----------------------------------------------------------------------------- checksums
def _parse_checksum(checksum: str) -> tuple[str, str]:
    algo, _, digest = checksum.partition(":")
    if algo not in ("md5", "sha1", "sha256") or not digest:
        raise DataError(f"malformed checksum {checksum!r}; expected 'sha256:<hex>' or 'md5:<hex>'")
    return algo, digest.lower()


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm, usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, info: DatasetInfo, verify: bool) -> None:
    """Check the archive against the registry checksum (once; remembered in a side file)."""
    if not verify:
        return
    if info.checksum is None:
        raise DataError(
            f"no published checksum is known for {info.name!r}, so {path} cannot be verified; "
            "pass verify=False to load it anyway"
        )
    algo, expected = _parse_checksum(info.checksum)
    stat = path.stat()
    marker = path.with_name(path.name + ".verified")
    stamp = f"{info.checksum} {stat.st_size} {stat.st_mtime_ns}"
    if marker.is_file() and marker.read_text().strip() == stamp:
        return
    actual = file_digest(path, algo)
    if actual != expected:
        raise DataError(
            f"{path}: {algo} checksum mismatch for {info.name!r} (expected {expected}, got "
            f"{actual}); the file is corrupt or not the published archive: delete it and "
            "load again"
        )
    marker.write_text(stamp + "\n")


def _download(info: DatasetInfo, dest: Path, *, timeout: float = 60.0) -> None:
    """Download ``info.url`` to ``dest`` atomically, checking the checksum before renaming."""
    if info.url is None:
        raise DataError(f"{info.name!r} has no download URL")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache directory {dest.parent}: {exc}") from exc
    algo, expected = _parse_checksum(info.checksum) if info.checksum else ("sha256", None)
    h = hashlib.new(algo, usedforsecurity=False)
    with atomic_open(dest, suffix=".part") as out:  # renamed only if the checksum matched
        try:
            with urllib.request.urlopen(info.url, timeout=timeout) as resp:
                while chunk := resp.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(
                f"cannot download {info.name!r} from {info.url} ({reason}; offline?); "
                f"download it yourself and place the file at {dest}"
            ) from exc
        if expected is not None and h.hexdigest() != expected:
            raise DataError(
                f"download of {info.name!r} from {info.url} has the wrong {algo} checksum "
                f"(expected {expected}, got {h.hexdigest()}); nothing was saved, try again"
            )
    if expected is not None:
        stat = dest.stat()
        marker = dest.with_name(dest.name + ".verified")
        marker.write_text(f"{info.checksum} {stat.st_size} {stat.st_mtime_ns}\n")


def fetch(
    name: str,
    *,
    cache: str | Path | None = None,
    download: bool = True,
    verify: bool = True,
) -> Path:
    """Path of a data set's archive in the cache, downloading it when missing.

    Parameters
    ----------
    name
        A downloadable name of :data:`REGISTRY`.
    cache
        Cache directory (default :func:`cache_dir`).
    download
        Download when the archive is not in the cache (else raise).
    verify
        Check the archive against its published checksum.

    Raises
    ------
    DataError
        On an unknown or shipped name, a failed download (with the path where the file can be
        placed by hand), a missing archive with ``download=False``, or a checksum mismatch.
    """
    info = _info(name)
    if info.url is None:
        raise DataError(f"{name!r} ships with recforge and has no archive to fetch")
    path = cache_dir(cache) / info.filename
    if not path.is_file():
        if not download:
            raise DataError(
                f"{name!r} is not in the cache; download {info.url} and place it at {path}, "
                "or call with download=True"
            )
        if verify and info.checksum is None:
            _verify(path, info, verify)  # raises: refuse before downloading
        _download(info, path)
    _verify(path, info, verify)
    return path


# ----------------------------------------------------------------------------- parsing
_YEAR = r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$"


def _year_from_title(title: pd.Series) -> pd.Series:
    return pd.to_numeric(title.str.extract(_YEAR, expand=False), errors="coerce").astype("Int64")


def _join_tags(tags: pd.DataFrame, movie: str = "movieId", tag: str = "tag") -> pd.Series:
    t = tags[[movie, tag]].dropna()
    t = t.assign(**{tag: t[tag].astype(str).str.strip()})
    t = t[t[tag] != ""].drop_duplicates()
    return t.groupby(movie, sort=False)[tag].agg("|".join)


def _movie_attributes(movies: pd.DataFrame, tags: pd.DataFrame | None) -> pd.DataFrame:
    """Attribute table (title, year, genres, tags) indexed by movie id."""
    genres = movies["genres"].fillna("").astype(str)
    genres = genres.where(genres != "(no genres listed)", "")
    out = pd.DataFrame(
        {
            "title": movies["title"].astype(str).to_numpy(),
            "year": _year_from_title(movies["title"].astype(str)).array,
            "genres": genres.to_numpy(),
        },
        index=pd.Index(movies["movieId"].to_numpy(), name="item"),
    )
    if tags is not None:
        joined = _join_tags(tags)
        out["tags"] = joined.reindex(out.index).fillna("").astype(str).to_numpy()
    return out


def _build(
    ratings: pd.DataFrame,
    items: pd.DataFrame | None,
    name: str,
    source: str,
    users: pd.DataFrame | None = None,
) -> Dataset:
    return Dataset.from_frame(
        ratings,
        user="user",
        item="item",
        value="rating",
        time="timestamp",
        item_attributes=items,
        user_attributes=users,
        name=name,
        source=source,
    )


def _load_shipped() -> Dataset:
    root = resources.files("recforge.data") / "_files" / "movielens-small"
    with (root / "ratings.parquet").open("rb") as f:
        ratings = pd.read_parquet(f)
    with (root / "movies.csv.gz").open("rb") as f:
        movies = pd.read_csv(f, compression="gzip")
    with (root / "tags.csv.gz").open("rb") as f:
        tags = pd.read_csv(f, compression="gzip")
    ratings = ratings.rename(columns={"userId": "user", "movieId": "item"})
    return _build(ratings, _movie_attributes(movies, tags), "movielens-small", "movielens-small")


def _member(zf: zipfile.ZipFile, suffix: str, archive: Path) -> str:
    for n in zf.namelist():
        if n.endswith("/" + suffix) or n == suffix:
            return n
    raise DataError(f"{archive}: the archive has no {suffix!r} (members: {len(zf.namelist())})")


def _read_dat(f: IO[bytes], names: list[str], encoding: str) -> pd.DataFrame:
    """Read a '::'-separated MovieLens .dat file (fields must not contain newlines)."""
    text = f.read().decode(encoding, errors="replace")
    data = io.StringIO(text.replace("::", "\t"))
    return pd.read_csv(data, sep="\t", names=names, header=None, quoting=3, engine="c")


def _parse_ml100k(zf: zipfile.ZipFile, archive: Path, name: str) -> Dataset:
    with zf.open(_member(zf, "u.data", archive)) as f:
        ratings = pd.read_csv(
            f, sep="\t", names=["user", "item", "rating", "timestamp"], header=None
        )
    with zf.open(_member(zf, "u.genre", archive)) as f:
        genre_names = [
            line.split("|")[0] for line in f.read().decode("latin-1").splitlines() if line.strip()
        ]
    with zf.open(_member(zf, "u.item", archive)) as f:
        cols = ["movieId", "title", "release", "video", "imdb", *genre_names]
        movies = pd.read_csv(f, sep="|", names=cols, header=None, encoding="latin-1", quoting=3)
    flags = movies[genre_names].to_numpy(dtype=bool)
    labels = np.asarray(genre_names, dtype=object)
    genres = ["|".join(labels[row & (labels != "unknown")]) for row in flags]
    release = pd.to_datetime(movies["release"], format="%d-%b-%Y", errors="coerce")
    year = release.dt.year.astype("Int64")
    items = pd.DataFrame(
        {
            "title": movies["title"].astype(str).to_numpy(),
            "year": year.array,
            "genres": genres,
        },
        index=pd.Index(movies["movieId"].to_numpy(), name="item"),
    )
    users = None
    if any(n.endswith("/u.user") for n in zf.namelist()):
        with zf.open(_member(zf, "u.user", archive)) as f:
            users = pd.read_csv(
                f, sep="|", names=["user", "age", "gender", "occupation", "zip"], header=None
            ).set_index("user")
    return _build(ratings, items, name, f"{archive}!u.data", users)


def _parse_dat(zf: zipfile.ZipFile, archive: Path, name: str) -> Dataset:
    encoding = "latin-1" if name == "movielens-1m" else "utf-8"
    with zf.open(_member(zf, "ratings.dat", archive)) as f:
        ratings = _read_dat(f, ["user", "item", "rating", "timestamp"], encoding)
    with zf.open(_member(zf, "movies.dat", archive)) as f:
        movies = _read_dat(f, ["movieId", "title", "genres"], encoding)
    tags = None
    if any(n.endswith("/tags.dat") for n in zf.namelist()):
        with zf.open(_member(zf, "tags.dat", archive)) as f:
            tags = _read_dat(f, ["userId", "movieId", "tag", "timestamp"], encoding)
    users = None
    if any(n.endswith("/users.dat") for n in zf.namelist()):
        with zf.open(_member(zf, "users.dat", archive)) as f:
            users = _read_dat(f, ["user", "gender", "age", "occupation", "zip"], encoding)
        users = users.set_index("user")
    return _build(ratings, _movie_attributes(movies, tags), name, f"{archive}!ratings.dat", users)


def _parse_csv(zf: zipfile.ZipFile, archive: Path, name: str) -> Dataset:
    with zf.open(_member(zf, "ratings.csv", archive)) as f:
        ratings = pd.read_csv(f, engine="c").rename(columns={"userId": "user", "movieId": "item"})
    with zf.open(_member(zf, "movies.csv", archive)) as f:
        movies = pd.read_csv(f)
    tags = None
    if any(n.endswith("/tags.csv") for n in zf.namelist()):
        with zf.open(_member(zf, "tags.csv", archive)) as f:
            tags = pd.read_csv(f)
    return _build(ratings, _movie_attributes(movies, tags), name, f"{archive}!ratings.csv")


_PARSERS = {"ml-100k": _parse_ml100k, "ml-dat": _parse_dat, "ml-csv": _parse_csv}


def load(
    name: str,
    *,
    cache: str | Path | None = None,
    download: bool = True,
    verify: bool = True,
) -> Dataset:
    """Load a named data set as a :class:`~recforge.data.Dataset`.

    Parameters
    ----------
    name
        One of :data:`REGISTRY` (see :func:`list_datasets`): ``"movielens-small"`` (shipped,
        no network), ``"movielens-100k"``, ``"-1m"``, ``"-10m"``, ``"-20m"``, ``"-25m"``,
        ``"-32m"``.
    cache
        Cache directory of downloads (default ``$RECFORGE_DATA`` or ``~/.cache/recforge``).
    download
        Download a missing archive (else raise with the path to place it at).
    verify
        Check downloads against their published checksum; a data set without one is refused
        unless ``verify=False``.

    Returns
    -------
    Dataset
        ``value`` is the rating, ``time`` the timestamp (epoch seconds) and
        ``item_attributes`` the movie table described in this module's docstring (plus
        ``user_attributes`` with demographics for 100K and 1M).

    Raises
    ------
    DataError
        On an unknown name, a failed download, a checksum mismatch or a malformed archive.

    Examples
    --------
    >>> ds = load("movielens-small")
    >>> ds.n_interactions, ds.n_users
    (100004, 671)
    """
    info = _info(name)
    if info.layout == "shipped":
        return _load_shipped()
    archive = fetch(name, cache=cache, download=download, verify=verify)
    try:
        with zipfile.ZipFile(archive) as zf:
            return _PARSERS[info.layout](zf, archive, name)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a valid zip archive ({exc}); delete it and retry") from exc
