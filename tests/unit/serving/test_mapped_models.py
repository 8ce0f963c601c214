"""Memory-mapped model arrays, the write counters and the limits of a multi-worker service."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recforge.exceptions import ModelFormatError
from recforge.models._io import load_model, mapped_cache_dir, read_model_files
from recforge.models.als import ALS
from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.serving._workers import PeerWrites, bind_sockets, worker_settings
from recforge.serving.app import check_for_new_version, create_app
from recforge.serving.settings import ServiceSettings

from .conftest import content_model


def _mapped(arr: np.ndarray) -> bool:
    """Whether ``arr`` is a read-only view of a file mapping."""
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        if isinstance(base, np.memmap):
            break
        base = base.base
    return isinstance(base, np.memmap) and not arr.flags.writeable


def test_mapped_model_recommends_folds_in_and_adds_items_like_the_loaded_one(tmp_path, dataset):
    model = content_model(dataset)
    model.save(tmp_path / "m")
    plain = load_model(tmp_path / "m")
    mapped = load_model(tmp_path / "m", mapped=True)
    _, arrays = read_model_files(tmp_path / "m", mapped=True)
    assert arrays
    assert all(_mapped(a) for a in arrays.values() if a.size)
    users = plain.users_.ids_of(np.arange(5))
    a, b = plain.recommend(users, 5), mapped.recommend(users, 5)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_allclose(a.scores, b.scores)
    h1 = plain.recommend_for_history([1, 2, 5], None, 5)
    h2 = mapped.recommend_for_history([1, 2, 5], None, 5)
    np.testing.assert_array_equal(h1.items, h2.items)
    import pandas as pd

    new = pd.DataFrame({"title": ["New"], "genres": ["Drama"]}, index=pd.Index([99], name="item"))
    mapped.add_items(new)  # must copy, never write into the mapped arrays
    assert 99 in set(mapped.similar_items([1], 30).items[0].tolist()) | {99}
    assert mapped.items_.codes([99])[0] == len(plain.items_)


def test_mapped_als_folds_in_without_writing(tmp_path, dataset):
    model = ALS(factors=4, iterations=2, rng=0).fit(dataset)
    model.save(tmp_path / "als.zip")
    mapped = load_model(tmp_path / "als.zip", mapped=True)
    assert mapped_cache_dir(tmp_path / "als.zip", _digest(tmp_path / "als.zip")).is_dir()
    r = mapped.recommend_for_history([1, 2], [5.0, 1.0], 3)
    np.testing.assert_array_equal(r.items, model.recommend_for_history([1, 2], [5.0, 1.0], 3).items)


def _digest(zip_path: Path) -> str:
    import hashlib

    with zipfile.ZipFile(zip_path) as zf:
        return hashlib.sha256(zf.read("arrays.npz")).hexdigest()


def test_cache_is_made_once_and_a_damaged_version_is_refused(tmp_path, dataset):
    reg = ModelRegistry(tmp_path / "reg")
    info = reg.publish(MostPopular().fit(dataset), promote=True)
    reg.load(info.version, mapped=True)
    caches = list(info.path.glob(".arrays-*/manifest.json"))
    assert len(caches) == 1
    stamp = caches[0].stat().st_mtime_ns
    reg.load(info.version, mapped=True)
    assert caches[0].stat().st_mtime_ns == stamp  # mapped, not extracted again
    # a version damaged after extraction is refused, as by the full check
    npz = info.path / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    with pytest.raises(ModelFormatError, match=r"arrays\.npz"):
        reg.load(info.version, mapped=True)
    # a damaged version is never extracted
    bad = reg.publish(MostPopular().fit(dataset))
    raw = bytearray((bad.path / "arrays.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (bad.path / "arrays.npz").write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="checksum"):
        reg.load(bad.version, mapped=True)
    assert not list(bad.path.glob(".arrays-*"))


def test_a_read_only_model_directory_is_loaded_into_memory(tmp_path, dataset):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    MostPopular().fit(dataset).save(tmp_path / "m")
    os.chmod(tmp_path / "m", 0o555)
    try:
        model = load_model(tmp_path / "m", mapped=True)
    finally:
        os.chmod(tmp_path / "m", 0o755)
    assert len(model.recommend(model.users_.ids_of([0]), 3).items[0]) == 3


def test_service_hot_swaps_between_mapped_versions(tmp_path, dataset):
    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(content_model(dataset), promote=True)
    settings = ServiceSettings(registry=reg.root, db=f"sqlite:///{tmp_path / 'e.db'}")
    app = create_app(settings, background=False)
    with TestClient(app, base_url="http://localhost") as client:
        ev = {"event_id": "e1", "user": "new", "item": "3", "type": "view"}
        assert client.post("/events", json=ev).status_code == 200
        r = client.get("/recommendations/new", params={"k": 3})
        assert r.status_code == 200, r.text
        r = r.json()
        assert r["model_version"] == "v000001"
        assert "fold-in" in r["reason"]
        v2 = reg.publish(MostPopular().fit(dataset), promote=True)
        assert check_for_new_version(app.state.recforge, {})
        r = client.get("/recommendations/new", params={"k": 3}).json()
        assert r["model_version"] == v2.version
        assert "3" not in [i["item"] for i in r["items"]]
        assert list(v2.path.glob(".arrays-*/manifest.json"))


def test_worker_settings_divide_the_service_limits():
    s = ServiceSettings(max_concurrency=8, max_queue=16, max_connections=1000)
    w = worker_settings(s, 3)
    assert (w.max_concurrency, w.max_queue, w.max_connections) == (2, 5, 333)
    assert w.max_anonymous_bodies == s.max_anonymous_bodies // 3
    assert worker_settings(ServiceSettings(max_concurrency=1, max_queue=0), 4).max_concurrency == 1
    assert worker_settings(s, 1) is s


def test_peer_writes_are_seen_by_every_worker(tmp_path):
    path = PeerWrites.create(tmp_path / "w.bin", 2)
    a, b = PeerWrites(path, 0), PeerWrites(path, 1)
    a.wrote(0)
    a.wrote(0)
    b.wrote(1)
    assert a.totals() == b.totals() == (2, 1)
    with pytest.raises(Exception, match="slot 2"):
        PeerWrites(path, 2)


def test_bound_sockets_share_one_port():
    socks = bind_sockets("127.0.0.1", 0, 2)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(ports) == 1
    finally:
        for s in socks:
            s.close()


def test_a_write_acknowledged_by_one_worker_is_read_back_by_another(tmp_path, registry):
    """Two apps over one store and one counter file, as two workers, without background sync:
    the second answers with the first's events and items at its next request."""
    from recforge.serving.store import EventStore

    db = f"sqlite:///{tmp_path / 'e.db'}"
    counters = PeerWrites.create(tmp_path / "writes.bin", 2)
    settings = ServiceSettings(registry=registry.root, db=db)
    apps = [
        create_app(settings, store=EventStore(db), background=False, peers=PeerWrites(counters, k))
        for k in range(2)
    ]
    with (
        TestClient(apps[0], base_url="http://localhost") as a,
        TestClient(apps[1], base_url="http://localhost") as b,
    ):
        assert b.get("/recommendations/fresh").json()["reason"].startswith("unknown user")
        ev = {"event_id": "x1", "user": "fresh", "item": "3", "type": "view"}
        assert a.post("/events", json=ev).status_code == 200
        r = b.get("/recommendations/fresh", params={"k": 5}).json()
        assert "fold-in of 1 new events" in r["reason"]
        assert "3" not in [it["item"] for it in r["items"]]
        # a new item put through one worker is recommendable through the other
        item = {"id": "77", "attributes": {"title": "New", "genres": "Horror"}}
        assert a.put("/items", json={"items": [item]}).json()["recommendable_now"]
        similar = b.get("/items/3/similar", params={"k": 30}).json()["items"]
        assert "77" in [it["item"] for it in similar]


@pytest.mark.parametrize(
    "name", ["bias", "itemknn", "userknn", "rp3beta", "svd", "bpr", "ease", "hybridmf"]
)
def test_every_kind_of_model_serves_from_mapped_arrays(tmp_path, dataset, name):
    """Mapped arrays are read-only: a model writing into its loaded state would raise here."""
    from recforge.models import model_class

    model_class(name)().fit(dataset).save(tmp_path / name)
    model = load_model(tmp_path / name)  # the same files decompressed into memory
    mapped = load_model(tmp_path / name, mapped=True)
    users = model.users_.ids_of(np.arange(3))
    np.testing.assert_array_equal(mapped.recommend(users, 4).items, model.recommend(users, 4).items)
    if mapped.supports_history:
        got = mapped.recommend_for_history([1, 2], None, 4).items
        assert got.shape == (1, 4)
        assert not {1, 2} & set(got[0].tolist())
        want = model.recommend_for_history([1, 2], None, 4).items
        if np.array_equal(want, model.recommend_for_history([1, 2], None, 4).items):
            np.testing.assert_array_equal(got, want)  # BPR's fold-in differs call to call
    if mapped.supports_similar_items:
        np.testing.assert_array_equal(
            mapped.similar_items([1], 4).items, model.similar_items([1], 4).items
        )
