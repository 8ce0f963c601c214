"""Model registry: publish, verify, promote, rollback, atomicity and rejection of bad files."""

from __future__ import annotations

import io
import itertools
import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recforge.exceptions import ConfigError, ModelFormatError
from recforge.models.bias import BiasedBaseline
from recforge.models.popular import MostPopular
from recforge.registry import ACTIVE, CHECKSUMS, ModelRegistry
from recforge.testing import toy_dataset


@pytest.fixture(scope="module")
def data():
    return toy_dataset()


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


def test_publish_records_metadata_and_loads_identically(reg, data):
    model = MostPopular().fit(data)
    info = reg.publish(
        model, metrics={"ndcg@10": 0.25}, data_fingerprint=data.fingerprint(), extra={"a": 1}
    )
    assert info.version == "v000001"
    assert info.model == "popular"
    assert info.metrics == {"ndcg@10": 0.25}
    assert info.data_fingerprint == data.fingerprint()
    assert info.parent is None
    assert info.extra == {"a": 1}
    assert reg.active_version() is None
    loaded, linfo = reg.load("v000001")
    assert linfo.version == "v000001"
    np.testing.assert_array_equal(
        loaded.recommend(["u1", "u2"], k=5).items, model.recommend(["u1", "u2"], k=5).items
    )


def test_promote_rollback_and_lineage(reg, data):
    v1 = reg.publish(MostPopular().fit(data), promote=True)
    v2 = reg.publish(BiasedBaseline().fit(data))
    assert v2.parent == v1.version  # lineage defaults to the active version
    assert reg.active_version() == v1.version
    reg.promote(v2.version)
    assert reg.active_version() == v2.version
    model, info = reg.load_active()
    assert isinstance(model, BiasedBaseline)
    assert info.version == v2.version
    back = reg.rollback()
    assert back.version == v1.version
    assert reg.active_version() == v1.version
    with pytest.raises(ConfigError, match="no previous active version"):
        reg.rollback()
    assert [v.version for v in reg.list()] == ["v000001", "v000002"]


def test_load_active_without_promotion_raises(reg):
    with pytest.raises(ConfigError, match="no active model"):
        reg.load_active()


def _corrupt_truncate(path: Path) -> None:
    npz = path / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:100])


def _corrupt_flip(path: Path) -> None:
    npz = path / "arrays.npz"
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))


def _remove_checksums(path: Path) -> None:
    (path / CHECKSUMS).unlink()


@pytest.mark.parametrize("corrupt", [_corrupt_truncate, _corrupt_flip, _remove_checksums])
def test_corrupted_versions_are_rejected_and_not_promoted(reg, data, corrupt):
    good = reg.publish(MostPopular().fit(data), promote=True)
    bad = reg.publish(MostPopular().fit(data))
    corrupt(bad.path)
    with pytest.raises(ModelFormatError):
        reg.load(bad.version)
    with pytest.raises(ModelFormatError):
        reg.promote(bad.version)
    assert reg.active_version() == good.version
    assert [v.version for v in reg.list()] == [good.version]


def _resign(path: Path) -> None:
    """Recompute checksums so only the model-format validation can catch the damage."""
    import hashlib

    files = {
        n: hashlib.sha256((path / n).read_bytes()).hexdigest() for n in ("model.json", "arrays.npz")
    }
    (path / CHECKSUMS).write_text(json.dumps({"version": path.name, "files": files}))


def test_misshaped_arrays_rejected_even_with_valid_checksums(reg, data):
    info = reg.publish(MostPopular().fit(data))
    with np.load(info.path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["scores"] = arrays["scores"][:-3]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (info.path / "arrays.npz").write_bytes(buf.getvalue())
    _resign(info.path)
    with pytest.raises(ModelFormatError, match="scores"):
        reg.load(info.version)


def test_pickle_bearing_arrays_rejected(reg, data):
    info = reg.publish(MostPopular().fit(data))
    with np.load(info.path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["scores"] = np.array([{"evil": 1}], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (info.path / "arrays.npz").write_bytes(buf.getvalue())
    _resign(info.path)
    with zipfile.ZipFile(info.path / "arrays.npz") as zf:
        assert "scores.npy" in zf.namelist()
    with pytest.raises(ModelFormatError, match="pickle"):
        reg.load(info.version)


def test_active_pointer_is_replaced_atomically(reg, data, monkeypatch):
    v1 = reg.publish(MostPopular().fit(data), promote=True)
    v2 = reg.publish(MostPopular().fit(data))
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(ACTIVE):
            raise OSError("simulated crash before the rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated crash"):
        reg.promote(v2.version)
    monkeypatch.setattr(os, "replace", real_replace)
    # the pointer still names the old version and is valid JSON; no temp files are left behind
    assert reg.active_version() == v1.version
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp-")]


def test_incomplete_publication_is_invisible(reg, data):
    reg.publish(MostPopular().fit(data), promote=True)
    # a crash during publication leaves only a temp directory, never a version directory
    (reg.versions_dir / ".tmp-v000002-deadbeef").mkdir()
    assert [v.version for v in reg.list()] == ["v000001"]
    assert reg.publish(MostPopular().fit(data)).version == "v000002"


def test_concurrent_promotions_are_serialised(reg, data):
    versions = [reg.publish(MostPopular().fit(data)).version for _ in range(4)]
    errors: list[BaseException] = []

    def worker(v: str) -> None:
        try:
            for _ in range(5):
                reg.promote(v)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    doc = json.loads((reg.root / ACTIVE).read_text())
    assert doc["version"] in versions
    chain = [*doc["history"], doc["version"]]
    assert set(chain) <= set(versions)
    # every switch appended the previous version exactly once: no lost or torn update
    assert all(a != b for a, b in itertools.pairwise(chain))
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp-")]


def test_decisions_are_recorded(reg):
    reg.record_decision({"promoted": False, "reason": "not better"})
    assert reg.decisions() == [{"promoted": False, "reason": "not better"}]


def test_invalid_version_names_rejected(reg):
    with pytest.raises(ModelFormatError, match="invalid version name"):
        reg.load("../../etc")
