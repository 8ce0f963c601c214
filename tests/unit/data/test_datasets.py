"""Shipped MovieLens latest-small and the verified-download machinery (no network)."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge import datasets as public
from recforge.data import Dataset, datasets
from recforge.exceptions import DataError


class TestShipped:
    def test_sizes(self, ml_small: Dataset) -> None:
        assert ml_small.n_interactions == 100_004
        assert ml_small.n_users == 671
        assert ml_small.n_items == 9_125  # every listed movie ...
        assert int((ml_small.item_counts() > 0).sum()) == 9_066  # ... of which 9,066 rated
        assert ml_small.time is not None
        assert ml_small.value.dtype == np.float32
        assert set(np.unique(ml_small.value).tolist()) == {x / 2 for x in range(1, 11)}

    def test_item_attributes(self, ml_small: Dataset) -> None:
        attrs = ml_small.item_attributes
        assert attrs is not None
        assert list(attrs.columns) == ["title", "year", "genres", "tags"]
        toy = attrs.loc[1]
        assert toy["title"] == "Toy Story (1995)"
        assert toy["year"] == 1995
        assert toy["genres"] == "Adventure|Animation|Children|Comedy|Fantasy"
        assert str(attrs["year"].dtype) == "Int64"
        assert attrs.loc[108548, "year"] == 2007  # "Big Bang Theory, The (2007-)"
        assert pd.isna(attrs.loc[162376, "year"])  # "Stranger Things": no year
        assert attrs.loc[143410, "genres"] == ""  # "(no genres listed)"
        assert int((attrs["tags"] != "").sum()) == 689
        assert attrs.loc[339, "tags"].split("|")[0] == "sandra 'boring' bullock"

    @pytest.mark.realdata
    def test_matches_the_original_csv(self, ml_small: Dataset, ml_small_dir: Path) -> None:
        csv = pd.read_csv(ml_small_dir / "ratings.csv")
        frame = ml_small.to_frame()
        assert frame["user"].tolist() == csv["userId"].tolist()
        assert frame["item"].tolist() == csv["movieId"].tolist()
        np.testing.assert_array_equal(frame["value"].to_numpy(), csv["rating"].to_numpy())
        assert frame["time"].tolist() == csv["timestamp"].tolist()
        movies = pd.read_csv(ml_small_dir / "movies.csv")
        assert set(ml_small.items.ids.tolist()) == set(movies["movieId"].tolist())

    def test_public_module_and_fresh_copies(self, ml_small: Dataset) -> None:
        other = public.load("movielens-small")
        assert other is not ml_small
        assert other.fingerprint() == ml_small.fingerprint()

    def test_arrays_are_read_only(self, ml_small: Dataset) -> None:
        with pytest.raises(ValueError, match="read-only"):
            ml_small.value[0] = 0.0


class TestListing:
    def test_table(self, tmp_path: Path) -> None:
        (tmp_path / "ml-1m.zip").write_bytes(b"x")
        table = datasets.list_datasets(tmp_path)
        assert table.index.tolist() == list(datasets.REGISTRY)
        assert table.loc["movielens-small", "available"]
        assert table.loc["movielens-1m", "available"]
        assert not table.loc["movielens-100k", "available"]
        assert table.loc["movielens-100k", "size"] == "4.9 MB"
        assert not table.loc["movielens-32m", "verified"]
        assert "non-commercial" in table.loc["movielens-25m", "licence"]

    def test_cache_dir_env(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("RECFORGE_DATA", str(tmp_path))
        assert datasets.cache_dir() == tmp_path
        monkeypatch.delenv("RECFORGE_DATA")
        assert datasets.cache_dir() == Path.home() / ".cache" / "recforge"
        assert datasets.cache_dir(tmp_path / "x") == tmp_path / "x"

    def test_unknown_name(self) -> None:
        with pytest.raises(DataError, match="unknown data set 'movielens-2k' \\(data sets: "):
            datasets.load("movielens-2k")

    def test_published_checksums_are_well_formed(self) -> None:
        for info in datasets.REGISTRY.values():
            if info.url is not None:
                assert info.url.startswith("https://files.grouplens.org/datasets/movielens/")
            if info.checksum is not None:
                algo, digest = info.checksum.split(":")
                assert algo == "md5"
                assert len(digest) == 32
                int(digest, 16)


# ----------------------------------------------------------------------------- archives
def _zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _ml100k(path: Path) -> Path:
    genres = "unknown|0\nAction|1\nComedy|2\n"
    items = (
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|1\n"
        "2|GoldenEye (1995)|01-Jan-1995||http://y|0|1|0\n"
        "3|Caf\xe9 Noir (1996)|||http://z|1|0|0\n"
    ).encode("latin-1")
    return _zip(
        path,
        {
            "ml-100k/u.data": "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n",
            "ml-100k/u.genre": genres,
            "ml-100k/u.item": items,
            "ml-100k/u.user": "1|24|M|technician|85711\n2|53|F|other|94043\n",
        },
    )


def _ml1m(path: Path) -> Path:
    return _zip(
        path,
        {
            "ml-1m/ratings.dat": "1::10::5::978300760\n2::10::3::978302109\n2::20::4::978301968\n",
            "ml-1m/movies.dat": (
                "10::Toy Story: The Movie (1995)::Animation|Children's\n20::Heat (1995)::Action\n"
            ).encode("latin-1"),
            "ml-1m/users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
        },
    )


def _ml25m(path: Path) -> Path:
    return _zip(
        path,
        {
            "ml-25m/ratings.csv": (
                "userId,movieId,rating,timestamp\n1,5,3.5,1\n1,6,4.0,2\n7,5,1.0,3\n"
            ),
            "ml-25m/movies.csv": (
                'movieId,title,genres\n5,"Father of the Bride, Part II (1995)",Comedy\n'
                "6,Heat (1995),Action|Crime\n9,Unrated (2001),(no genres listed)\n"
            ),
            "ml-25m/tags.csv": (
                "userId,movieId,tag,timestamp\n1,5,funny,1\n7,5,family,2\n1,5,funny,3\n"
            ),
        },
    )


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Point registry entries at local archives (file:// URLs go through urllib as HTTP would)."""
    src = tmp_path / "server"
    src.mkdir()
    cache = tmp_path / "cache"

    def serve(name: str, builder, checksum: str | None = "auto") -> Path:  # type: ignore[no-untyped-def]
        info = datasets.REGISTRY[name]
        archive = builder(src / info.filename)
        digest = _sha256(archive) if checksum == "auto" else checksum
        monkeypatch.setitem(
            datasets.REGISTRY, name, replace(info, url=archive.as_uri(), checksum=digest)
        )
        return cache

    return serve


class TestDownloads:
    def test_ml100k(self, served) -> None:  # type: ignore[no-untyped-def]
        cache = served("movielens-100k", _ml100k)
        ds = datasets.load("movielens-100k", cache=cache)
        assert (cache / "ml-100k.zip").is_file()
        assert not list(cache.glob("*.part"))
        assert ds.n_interactions == 3
        assert ds.value.tolist() == [5.0, 3.0, 4.0]
        assert ds.time is not None
        assert ds.time[0] == 881250949
        attrs = ds.item_attributes
        assert attrs is not None
        assert attrs.loc[1, "genres"] == "Comedy"
        assert attrs.loc[2, "genres"] == "Action"
        assert attrs.loc[3, "genres"] == ""  # only "unknown"
        assert attrs.loc[3, "title"] == "Café Noir (1996)"
        assert attrs.loc[1, "year"] == 1995
        assert pd.isna(attrs.loc[3, "year"])
        assert ds.n_items == 3  # item 3 is cold
        assert ds.user_attributes is not None
        assert ds.user_attributes.loc[2, "occupation"] == "other"

    def test_ml1m_dat(self, served) -> None:  # type: ignore[no-untyped-def]
        cache = served("movielens-1m", _ml1m)
        ds = datasets.load("movielens-1m", cache=cache)
        assert ds.users.ids.tolist() == [1, 2]
        assert ds.items.ids.tolist() == [10, 20]
        assert ds.to_frame()["value"].tolist() == [5.0, 3.0, 4.0]
        attrs = ds.item_attributes
        assert attrs is not None
        assert attrs.loc[10, "title"] == "Toy Story: The Movie (1995)"  # ':' inside a field
        assert attrs.loc[10, "genres"] == "Animation|Children's"
        assert "tags" not in attrs.columns
        assert ds.user_attributes is not None
        assert ds.user_attributes.loc[2, "zip"] == 70072

    def test_ml25m_csv_with_tags(self, served) -> None:  # type: ignore[no-untyped-def]
        cache = served("movielens-25m", _ml25m)
        ds = datasets.load("movielens-25m", cache=cache)
        attrs = ds.item_attributes
        assert attrs is not None
        assert attrs.loc[5, "tags"] == "funny|family"
        assert attrs.loc[6, "tags"] == ""
        assert attrs.loc[9, "genres"] == ""
        assert ds.n_items == 3

    def test_second_load_uses_the_cache(self, served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        cache = served("movielens-100k", _ml100k)
        datasets.load("movielens-100k", cache=cache)
        (tmp_path / "server" / "ml-100k.zip").unlink()  # the "server" is gone
        ds = datasets.load("movielens-100k", cache=cache)
        assert ds.n_interactions == 3

    def test_checksum_mismatch_saves_nothing(self, served) -> None:  # type: ignore[no-untyped-def]
        cache = served("movielens-100k", _ml100k, checksum="sha256:" + "0" * 64)
        with pytest.raises(DataError, match=r"wrong sha256 checksum .* nothing was saved"):
            datasets.load("movielens-100k", cache=cache)
        assert list(cache.iterdir()) == []

    def test_md5_checksum(self, served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        archive = _ml100k(tmp_path / "probe.zip")
        md5 = "md5:" + hashlib.md5(archive.read_bytes()).hexdigest()
        cache = served("movielens-100k", _ml100k, checksum=md5)
        assert datasets.load("movielens-100k", cache=cache).n_interactions == 3

    def test_corrupt_cached_file_detected(self, served) -> None:  # type: ignore[no-untyped-def]
        cache = served("movielens-100k", _ml100k)
        cache.mkdir()
        (cache / "ml-100k.zip").write_bytes(b"not the archive")
        with pytest.raises(DataError, match=r"ml-100k\.zip: sha256 checksum mismatch"):
            datasets.load("movielens-100k", cache=cache)

    def test_unverifiable_needs_verify_false(self, served) -> None:  # type: ignore[no-untyped-def]
        cache = served("movielens-32m", _ml25m, checksum=None)
        with pytest.raises(DataError, match=r"no published checksum .* pass verify=False"):
            datasets.load("movielens-32m", cache=cache)
        assert not cache.exists() or not any(cache.iterdir())
        ds = datasets.load("movielens-32m", cache=cache, verify=False)
        assert ds.n_interactions == 3

    def test_offline(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        info = datasets.REGISTRY["movielens-1m"]
        monkeypatch.setitem(
            datasets.REGISTRY, "movielens-1m", replace(info, url="http://127.0.0.1:9/ml-1m.zip")
        )
        with pytest.raises(DataError) as err:
            datasets.load("movielens-1m", cache=tmp_path)
        msg = str(err.value)
        assert "cannot download 'movielens-1m' from http://127.0.0.1:9/ml-1m.zip" in msg
        assert "offline?" in msg
        assert f"place the file at {tmp_path / 'ml-1m.zip'}" in msg
        assert list(tmp_path.iterdir()) == []

    def test_no_download(self, tmp_path: Path) -> None:
        with pytest.raises(DataError, match="'movielens-10m' is not in the cache; download https"):
            datasets.load("movielens-10m", cache=tmp_path, download=False)

    def test_manually_placed_file_is_verified(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        archive = _ml1m(tmp_path / "ml-1m.zip")
        info = datasets.REGISTRY["movielens-1m"]
        monkeypatch.setitem(
            datasets.REGISTRY, "movielens-1m", replace(info, checksum=_sha256(archive))
        )
        ds = datasets.load("movielens-1m", cache=tmp_path, download=False)
        assert ds.n_interactions == 3
        assert (tmp_path / "ml-1m.zip.verified").is_file()

    def test_bad_zip(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "ml-1m.zip").write_bytes(b"garbage")
        with pytest.raises(DataError, match="not a valid zip archive"):
            datasets.load("movielens-1m", cache=tmp_path, download=False, verify=False)

    def test_archive_without_ratings(self, tmp_path: Path) -> None:
        _zip(tmp_path / "ml-1m.zip", {"ml-1m/README": "hi"})
        with pytest.raises(DataError, match=r"the archive has no 'ratings\.dat'"):
            datasets.load("movielens-1m", cache=tmp_path, download=False, verify=False)


def test_file_digest_streams(tmp_path: Path) -> None:
    p = tmp_path / "big.bin"
    data = os.urandom(3 * (1 << 20) + 5)
    p.write_bytes(data)
    assert datasets.file_digest(p, "sha256") == hashlib.sha256(data).hexdigest()
