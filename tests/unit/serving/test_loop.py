"""The production loop through the service: listing, added items, exclusion, version retries."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recforge.exceptions import ModelFormatError
from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.serving.app import LoadFailure, check_for_new_version, create_app
from recforge.serving.settings import ServiceSettings

from .conftest import catalog_dataset

WRITE = "write-key-0123456789"
W = {"X-API-Key": WRITE}


def make_settings(tmp_path: Path, registry: ModelRegistry, **kw: object) -> ServiceSettings:
    base: dict[str, object] = {
        "registry": registry.root,
        "db": f"sqlite:///{tmp_path / 'events.db'}",
        "write_keys": [WRITE],
        "poll_interval_s": 0.05,
        "sync_interval_s": 0.05,
    }
    base.update(kw)
    return ServiceSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path, registry: ModelRegistry) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path, registry), background=False)
    with TestClient(app) as c:
        yield c


def _damage_arrays(path: Path) -> None:
    raw = bytearray((path / "arrays.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (path / "arrays.npz").write_bytes(bytes(raw))


# ------------------------------------------------------------------ GET /models
def test_listing_versions_reads_metadata_only(client, registry):
    """Arrays are neither hashed nor decompressed to list versions (issue 11, defect 7)."""
    extra = registry.publish(MostPopular().fit(catalog_dataset()), metrics={"ndcg@10": 0.2})
    _damage_arrays(extra.path)  # a listing that read the arrays could not show this version
    r = client.get("/models")
    assert r.status_code == 200
    listed = {v["version"]: v for v in r.json()}
    assert listed[extra.version]["metrics"] == {"ndcg@10": 0.2}
    assert listed["v000001"]["active"] is True
    with pytest.raises(ModelFormatError, match="checksum"):
        registry.load(extra.version)  # loading still verifies everything


def test_listing_skips_versions_whose_metadata_is_damaged(registry):
    extra = registry.publish(MostPopular().fit(catalog_dataset()))
    (extra.path / "model.json").write_text("{}")
    assert [v.version for v in registry.list(verify=False)] == ["v000001"]


# ------------------------------------------------------------------ versions that failed
def test_a_version_that_failed_to_load_is_retried_once_repaired(tmp_path, registry):
    """Issue 11, defect 13: a rejected version was never tried again, even once repaired."""
    app = create_app(make_settings(tmp_path, registry), background=False)
    with TestClient(app) as c:
        state = c.app.state.recforge
        failed: dict[str, LoadFailure] = {}
        v2 = registry.publish(MostPopular().fit(catalog_dataset()), promote=True)
        npz = v2.path / "arrays.npz"
        good = npz.read_bytes()
        npz.write_bytes(good[:200])  # damaged after promotion (e.g. a partial copy)
        assert not check_for_new_version(state, failed)
        assert v2.version in failed
        assert not check_for_new_version(state, failed)  # unchanged files: backing off
        assert c.get("/model").json()["version"] == "v000001"
        npz.write_bytes(good)  # repaired
        assert check_for_new_version(state, failed)
        assert c.get("/model").json()["version"] == v2.version
        assert c.get("/model").json()["last_load_error"] is None
        assert failed == {}


def test_an_unchanged_failed_version_is_retried_after_a_back_off(tmp_path, registry):
    app = create_app(make_settings(tmp_path, registry), background=False)
    with TestClient(app) as c:
        state = c.app.state.recforge
        failed: dict[str, LoadFailure] = {}
        v2 = registry.publish(MostPopular().fit(catalog_dataset()), promote=True)
        (v2.path / "arrays.npz").write_bytes(b"not an archive")
        assert not check_for_new_version(state, failed)
        first = failed[v2.version]
        assert first.attempts == 1
        assert first.retry_at > time.monotonic()
        failed[v2.version] = dataclasses.replace(first, retry_at=time.monotonic() - 1)
        assert not check_for_new_version(state, failed)  # tried again, and failed again
        second = failed[v2.version]
        assert second.attempts == 2
        assert second.retry_at - time.monotonic() > first.retry_at - time.monotonic() - 0.5
