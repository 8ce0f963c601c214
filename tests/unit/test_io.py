"""The shared file helpers: atomic writes, JSON cleaning, sparse matrices as arrays."""

from __future__ import annotations

import io
import json
from pathlib import Path, PurePath

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge._io import (
    atomic_open,
    atomic_write,
    check_state_shape,
    csr_from_state,
    csr_state,
    jsonable,
)
from recforge.exceptions import ModelFormatError


class TestAtomicWrite:
    def test_writes_text_and_bytes(self, tmp_path: Path) -> None:
        atomic_write(tmp_path / "sub" / "a.txt", "héllo")
        atomic_write(tmp_path / "b.bin", b"\x00\x01")
        assert (tmp_path / "sub" / "a.txt").read_text(encoding="utf-8") == "héllo"
        assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"

    def test_failure_mid_write_keeps_the_old_file(self, tmp_path: Path) -> None:
        target = tmp_path / "doc.json"
        atomic_write(target, "old")

        def fail_midway() -> None:
            with atomic_open(target) as fh:
                fh.write(b"half of the new cont")
                raise RuntimeError("disk on fire")

        with pytest.raises(RuntimeError, match="disk on fire"):
            fail_midway()
        assert target.read_text() == "old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]

    def test_replaces_and_fsyncs_file_and_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import recforge._io as rio

        synced: list[str] = []
        real_fsync = rio.os.fsync

        def fsync(fd: int) -> None:
            synced.append("dir" if Path(f"/proc/self/fd/{fd}").resolve().is_dir() else "file")
            real_fsync(fd)

        monkeypatch.setattr(rio.os, "fsync", fsync)
        target = tmp_path / "x.txt"
        atomic_write(target, "1")
        atomic_write(target, "2")
        assert target.read_text() == "2"
        assert synced == ["file", "dir", "file", "dir"]


def test_jsonable_cleans_numpy_nan_na_and_paths() -> None:
    doc = {
        "f": np.float32(0.5),
        "i": np.int64(3),
        "nan": float("nan"),
        "inf": np.float64("inf"),
        "na": pd.NA,
        "p": PurePath("a/b"),
        2: (1, np.bool_(True)),
    }
    out = jsonable(doc)
    assert out == {
        "f": 0.5,
        "i": 3,
        "nan": None,
        "inf": None,
        "na": None,
        "p": "a/b",
        "2": [1, True],
    }
    json.dumps(out, allow_nan=False)


class TestSparseState:
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_roundtrip_keeps_shape_and_dtype(self, dtype: type) -> None:
        m = sp.csr_array(np.array([[0, 1.5, 0, 0], [0, 0, 0, 0], [2, 0, 0, 0]], dtype=dtype))
        buf = io.BytesIO()
        np.savez(buf, **csr_state("w", m, dtype=dtype))  # type: ignore[arg-type]
        buf.seek(0)
        with np.load(buf, allow_pickle=False) as z:
            back = csr_from_state(dict(z), "w", dtype=dtype)
        assert back.shape == (3, 4)
        assert back.dtype == dtype
        assert np.array_equal(back.toarray(), m.toarray())

    def test_trailing_empty_columns_are_kept(self) -> None:
        m = sp.csr_array((np.ones(1, np.float32), ([0], [0])), shape=(2, 9))
        assert csr_from_state(csr_state("x", m), "x").shape == (2, 9)

    def test_old_files_without_shape_load_with_the_given_shape(self) -> None:
        m = sp.csr_array(np.eye(3, 5, dtype=np.float32))
        old = {k: v for k, v in csr_state("s", m).items() if not k.endswith("_shape")}
        with pytest.raises(ModelFormatError, match="s_shape"):
            csr_from_state(old, "s")
        assert np.array_equal(csr_from_state(old, "s", (3, 5)).toarray(), m.toarray())

    def test_shape_disagreement_and_bad_indices_are_refused(self) -> None:
        m = sp.csr_array(np.eye(3, dtype=np.float32))
        state = csr_state("s", m)
        with pytest.raises(ModelFormatError, match="has shape"):
            csr_from_state(state, "s", (3, 4))
        bad = dict(state, s_indices=np.array([0, 1, 7], dtype=np.int32))
        with pytest.raises(ModelFormatError, match="out of range"):
            csr_from_state(bad, "s")
        bad = dict(state, s_indptr=np.array([0, 2, 1, 3], dtype=np.int64))
        with pytest.raises(ModelFormatError, match="inconsistent"):
            csr_from_state(bad, "s")

    def test_check_state_shape_names_the_array(self) -> None:
        with pytest.raises(ModelFormatError, match="'a'"):
            check_state_shape({}, "a", (None,))
        with pytest.raises(ModelFormatError, match="NaN"):
            check_state_shape({"a": np.array([np.nan])}, "a", (1,))


def test_models_saved_in_the_old_sparse_format_still_load(tmp_path: Path) -> None:
    from recforge.data import Dataset
    from recforge.models import model_class
    from recforge.models.base import Recommender

    frame = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 3], "item": [10, 11, 11, 12, 10, 12, 13]})
    model = model_class("itemknn")().fit(Dataset.from_frame(frame))
    model.save(tmp_path / "m")
    npz = tmp_path / "m" / "arrays.npz"
    with np.load(npz, allow_pickle=False) as z:
        arrays = dict(z)
    assert "base.seen_shape" in arrays
    assert "similarity_shape" in arrays
    old = {k: v for k, v in arrays.items() if not k.endswith("_shape") and k != "base.seen_data"}
    np.savez_compressed(npz, **old)  # type: ignore[arg-type]
    back = Recommender.load(tmp_path / "m")
    assert back.recommend([1, 2], k=2).items.tolist() == model.recommend([1, 2], k=2).items.tolist()
