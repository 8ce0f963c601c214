"""``recforge serve --workers 2`` as a subprocess: shared events, hot swap, metrics, signals."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from recforge.models.als import ALS
from recforge.models.popular import MostPopular
from recforge.registry import ModelRegistry
from recforge.serving._workers import MAX_RESTARTS
from recforge.testing import OpenLoopLoad, start_server, toy_dataset

pytestmark = pytest.mark.slow


def _worker_pids(base: str) -> set[int]:
    try:
        text = httpx.get(f"{base}/metrics", timeout=5).text
    except httpx.TimeoutException:  # queued for a worker being restarted
        return set()
    return {int(p) for p in re.findall(r'recforge_model_info\{[^}]*pid="(\d+)"[^}]*\} 1\.0', text)}


def _metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    assert m is not None, text
    return float(m.group(1))


def _wait(cond, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _fresh(base: str, path: str, **kw):  # type: ignore[no-untyped-def]
    """One request on its own connection (the kernel picks the worker for each)."""
    with httpx.Client(base_url=base, timeout=10) as c:
        return c.request(kw.pop("method", "GET"), path, **kw)


def test_two_workers_share_events_swap_together_and_stop_cleanly(tmp_path):
    ds = toy_dataset(n_users=40, n_items=30)
    reg = ModelRegistry(tmp_path / "reg")
    model = ALS(factors=8, iterations=3, rng=0).fit(ds)
    reg.publish(model, promote=True)
    item = str(model.items_.ids_of([0])[0])
    db = f"sqlite:///{tmp_path / 'events.db'}"
    env = {"RECFORGE_POLL_INTERVAL_S": "0.5", "RECFORGE_SYNC_INTERVAL_S": "30"}
    proc, port = start_server(
        reg.root, db, tmp_path / "log.txt", env=env, args=["--workers", "2"], timeout=120
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: len(_worker_pids(base)) == 2)
        # read-your-writes: each event posted on one connection counts on the next request,
        # whichever worker takes it (the background sync is 30 s away)
        for i in range(16):
            ev = {"event_id": f"e{i}", "user": f"new{i}", "item": item, "type": "view"}
            assert _fresh(base, "/events", method="POST", json=ev).status_code == 200
            r = _fresh(base, f"/recommendations/new{i}", params={"k": 5}).json()
            assert "fold-in of 1 new events" in r["reason"], r
            assert item not in [it["item"] for it in r["items"]]
        assert _metric(base, "recforge_events_ingested_total") == 16.0  # summed over workers
        # hot swap under load: nothing fails, every worker answers with the new version
        load = _start_load(base)
        time.sleep(1.0)
        v2 = reg.publish(MostPopular().fit(ds))
        reg.promote(v2.version)
        _wait(lambda: _versions(base) == {v2.version}, timeout=10)
        summary = load.result(timeout=60).summary()
        assert summary["errors"] == 0, summary
        assert summary["shed"] == 0, summary
        assert summary["ok"] > 100, summary
        # a worker that dies is replaced; the service keeps answering
        victim = min(_worker_pids(base))
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(_worker_pids(base) - {victim}) == 2)
        assert _fresh(base, "/recommendations/new0").status_code == 200
        pids = _worker_pids(base)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=40)
    assert code == 0, (tmp_path / "log.txt").read_text()[-2000:]
    for pid in pids:  # the workers are gone too
        _wait(lambda pid=pid: not _alive(pid), timeout=5)


def _start_load(base: str) -> OpenLoopLoad:
    return OpenLoopLoad(base, [f"/recommendations/new{i}" for i in range(16)], 100.0, 4.0)


def _versions(base: str) -> set[str]:
    return {_fresh(base, "/recommendations/x").json()["model_version"] for _ in range(12)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not serving: it only waits for its parent to reap it
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_workers_that_keep_dying_stop_the_service(tmp_path):
    reg = ModelRegistry(tmp_path / "reg")
    reg.publish(MostPopular().fit(toy_dataset(n_users=20, n_items=10)), promote=True)
    db = f"sqlite:///{tmp_path / 'events.db'}"
    proc, _ = start_server(reg.root, db, tmp_path / "log.txt", args=["--workers", "2"])
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            for child in _children(proc.pid):
                os.kill(child, signal.SIGKILL)
            time.sleep(0.2)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "log.txt").read_text()
    assert code == 1, log[-2000:]
    assert f"{MAX_RESTARTS + 1} worker exits within" in log
