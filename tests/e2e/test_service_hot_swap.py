"""Hot swap under load against a real ``recforge serve`` process.

While an open-loop client sends 100 requests/s from another process, the registry gets 20
good promotions (four model families), five broken versions made active behind its back
(truncated, corrupted, mis-shaped, pickle-bearing, unknown class), a guarded retrain with a
worse challenger and a rollback. Every request must succeed, every good version must answer
requests, and no broken or worse version may ever be served.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from recforge.models.als import ALS
from recforge.models.graph import RP3beta
from recforge.models.knn import ItemKNN
from recforge.models.linear import EASE
from recforge.models.popular import Random
from recforge.registry import ARRAYS_NPZ, CHECKSUMS, MODEL_JSON, ModelRegistry
from recforge.serving.retrain import retrain
from recforge.serving.store import EventStore
from recforge.testing import OpenLoopLoad, start_server, toy_dataset

ADMIN = "hot-swap-admin-key-0123"
WRITE = "hot-swap-write-key-0123"
RATE = 100.0
LOAD_SECONDS = 60.0  # at most: the load stops once the promotions and the rollback are done
# answered recommendation requests in the server's latency histogram
ANSWERED = re.compile(
    r'^recforge_request_duration_seconds_count\{[^}]*route="get_recommendations"[^}]*'
    r'status="200"[^}]*\} (\S+)$',
    re.MULTILINE,
)
IN_FLIGHT = re.compile(r"^recforge_requests_in_flight (\S+)$", re.MULTILINE)


def _refresh_checksums(path: Path) -> None:
    """Make CHECKSUMS.json match the (damaged) files, so only the loader can catch them."""
    sums = json.loads((path / CHECKSUMS).read_text())
    for name in (MODEL_JSON, ARRAYS_NPZ):
        sums["files"][name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    (path / CHECKSUMS).write_text(json.dumps(sums))


def _rewrite_arrays(path: Path, change) -> None:
    with np.load(path / ARRAYS_NPZ, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (path / ARRAYS_NPZ).write_bytes(buf.getvalue())


def _truncate(path: Path) -> None:
    data = (path / ARRAYS_NPZ).read_bytes()
    (path / ARRAYS_NPZ).write_bytes(data[: len(data) // 2])


def _flip_bytes(path: Path) -> None:  # checksums left stale: the registry must notice
    data = bytearray((path / ARRAYS_NPZ).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    (path / ARRAYS_NPZ).write_bytes(bytes(data))


def _mis_shape(path: Path) -> None:
    def drop_factor(arrays: dict[str, np.ndarray]) -> None:
        key = next(k for k in arrays if k.endswith("item_factors"))
        arrays[key] = arrays[key][:, :-1]

    _rewrite_arrays(path, drop_factor)


def _pickle_bearing(path: Path) -> None:
    def add_object_array(arrays: dict[str, np.ndarray]) -> None:
        arrays["payload"] = np.array([{"not": "data"}], dtype=object)

    with np.load(path / ARRAYS_NPZ, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    add_object_array(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays, allow_pickle=True)
    (path / ARRAYS_NPZ).write_bytes(buf.getvalue())
    with zipfile.ZipFile(path / ARRAYS_NPZ) as zf:  # the archive really holds a pickle
        assert b"\x80" in zf.read("payload.npy")


def _unknown_class(path: Path) -> None:
    doc = json.loads((path / MODEL_JSON).read_text())
    doc["model"] = "builtins.eval"
    (path / MODEL_JSON).write_text(json.dumps(doc))


DAMAGE = [
    ("truncated", _truncate, True),
    ("corrupted, stale checksum", _flip_bytes, False),
    ("mis-shaped", _mis_shape, True),
    ("pickle-bearing", _pickle_bearing, True),
    ("unknown class", _unknown_class, True),
]


@pytest.mark.slow
def test_twenty_promotions_broken_versions_and_rollback_under_load(tmp_path):
    ds = toy_dataset(n_users=80, n_items=60)
    families = [
        lambda i: ALS(factors=8, iterations=3, rng=i),
        lambda i: EASE(reg=50.0 + i),
        lambda i: ItemKNN(n_neighbors=10 + i),
        lambda i: RP3beta(alpha=0.5 + i / 100),
    ]
    # fit everything first, so kernel compilation on a cold cache never delays a swap
    models = [families[i % 4](i + 1).fit(ds) for i in range(20)]
    broken = {i: families[i % 4](99).fit(ds) for i in (6, 9, 12, 15, 18)}
    registry = ModelRegistry(tmp_path / "registry")
    first = registry.publish(families[0](0).fit(ds), promote=True)
    db = f"sqlite:///{tmp_path / 'events.db'}"
    env = {
        "RECFORGE_ADMIN_KEYS": json.dumps([ADMIN]),
        "RECFORGE_WRITE_KEYS": json.dumps([WRITE]),
        "RECFORGE_POLL_INTERVAL_S": "0.05",
        "RECFORGE_MAX_CONCURRENCY": "64",
    }
    proc, port = start_server(registry.root, db, tmp_path / "server.log", env=env)
    base = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=base, timeout=10)

    def served() -> dict:
        return api.get("/model").json()

    def answered() -> tuple[int, int]:
        """Recommendation requests answered, and requests in flight (the server's metrics)."""
        text = api.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
        flight = IN_FLIGHT.search(text)
        return (
            int(sum(float(m) for m in ANSWERED.findall(text))),
            int(float(flight.group(1))) if flight else 0,
        )

    def wait_served(version: str) -> None:
        deadline = time.monotonic() + 15
        while served()["version"] != version:
            assert time.monotonic() < deadline, f"server never swapped to {version}"
            time.sleep(0.02)
        # let the load hit this version: wait until the server has answered a few more load
        # requests (every one of them by this version), rather than for a fixed time, which
        # a starved load process may not use to send anything
        done, in_flight = answered()  # requests in flight may still hold the old version
        while answered()[0] < done + in_flight + 3:
            assert time.monotonic() < deadline + 15, f"no load request reached {version}"
            time.sleep(0.02)

    users = [str(u) for u in ds.users.ids]
    paths = [f"/recommendations/{u}?k=5" for u in users]
    try:
        load = OpenLoopLoad(base, paths, RATE, LOAD_SECONDS)
        # the load process needs its imports before it sends anything (seconds on a busy
        # machine): start swapping once its measured requests arrive, past the 16 requests
        # it sends to open connections before its clock starts
        deadline = time.monotonic() + 60
        while answered()[0] < 16 + 5:
            assert time.monotonic() < deadline, "the load never started"
            time.sleep(0.05)
        t_start = time.monotonic()
        good = [first.version]
        swap_seconds = []
        for i in range(20):
            t0 = time.monotonic()
            info = registry.publish(models[i], promote=True)
            wait_served(info.version)
            swap_seconds.append(time.monotonic() - t0)
            good.append(info.version)
            if i == 4:  # events arrive while versions change
                events = [
                    {"event_id": f"e{j}", "user": users[j % 9], "item": str(100 + j % 60)}
                    for j in range(300)
                ]
                r = api.post("/events/batch", json={"events": events}, headers={"X-API-Key": WRITE})
                assert r.json()["accepted"] == 300
            if i in (6, 9, 12, 15, 18):  # a broken version made active behind the registry
                label, damage, refresh = DAMAGE[(i - 6) // 3]
                bad = registry.publish(broken[i])
                damage(bad.path)
                if refresh:
                    _refresh_checksums(bad.path)
                with registry.lock():
                    registry._set_active(bad.version)  # what a buggy external tool might do
                deadline = time.monotonic() + 15
                while bad.version not in (served().get("last_load_error") or ""):
                    assert time.monotonic() < deadline, f"{label} version never rejected"
                    time.sleep(0.02)
                assert served()["version"] == info.version, label
                with registry.lock():
                    registry._set_active(info.version)

        # a worse challenger is evaluated but never promoted
        active_before = registry.active_version()
        store = EventStore(db)
        try:
            decision = retrain(registry, store, base=ds, challenger=Random(rng=1))
        finally:
            store.close()
        assert not decision.promoted, decision.reason
        assert registry.active_version() == active_before
        # rollback under load
        r = api.post("/models/rollback", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 200, r.text
        wait_served(r.json()["version"])
        assert r.json()["version"] == good[-2]
        elapsed = time.monotonic() - t_start
        assert elapsed < LOAD_SECONDS, f"promotions took {elapsed:.0f} s, longer than the load"
        load.stop()
        result = load.result()
        metrics = api.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    finally:
        api.close()
        proc.terminate()
        proc.wait(timeout=30)

    summary = result.summary()
    print(  # the figures benchmarks/RESULTS.md reports (run with -s)
        f"hot swap: {summary['n']} requests, {summary['ok']} ok, p99 {summary['p99_ms']:.1f} ms; "
        f"20 promotions in {sum(swap_seconds):.1f} s, slowest {max(swap_seconds):.2f} s"
    )
    assert summary["n"] >= int(RATE * 2)  # each version's share is checked below
    assert summary["ok"] == summary["n"], summary  # zero failed requests
    seen = set(result.versions)
    assert set(good[1:]) <= seen  # every promoted version answered requests under load
    assert seen <= set(good)  # nothing broken and no challenger was ever served
    assert "recforge_model_swaps_total 21.0" in metrics  # 20 promotions + the rollback
    assert "recforge_model_load_failures_total 5.0" in metrics
    assert max(swap_seconds) < 15
