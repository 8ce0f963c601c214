"""The production loop through the service: listing, added items, exclusion, version retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recforge.exceptions import ModelFormatError
from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.serving.app import create_app
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
