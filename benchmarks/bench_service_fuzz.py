"""Schema fuzzing of a real ``recforge serve`` process on loopback (never run by pytest).

    .venv/bin/python benchmarks/bench_service_fuzz.py [--examples 100] [--seed 0]
        [--modes admin,anonymous,nokeys] [--adversarial 2000]

Starts the service (uvicorn, one worker, SQLite store, a registry with two ALS versions, an
admin key and the tight limits k <= 200, 500 events per batch, 1 MiB bodies), loads its own
``/openapi.json`` with schemathesis and, for every operation, sends ``--examples`` generated
valid requests and as many invalid ones (where an invalid request exists). Modes, each on a
fresh server: ``admin`` sends the admin key with every request, so authorised writes and
admin routes are exercised; ``anonymous`` sends no key to the keyed server and checks that
nothing changed (events, items, keys, active version); ``nokeys`` runs the server without
keys (loopback, the development mode). Then ``--adversarial`` rounds of six requests (event,
recommendations, history, similar items, anonymous history, item upsert) use ids that look
like numbers to ``str.isdigit`` or ``int()`` or play with Unicode (the integer-id model), after
which a good event must still be folded in and the server must restart on the same store. Every response goes through
schemathesis' checks (no 5xx, response schema, documented status codes, content types and
headers, invalid input rejected) except ``positive_data_acceptance`` (rules across fields,
such as ``values`` matching ``items`` in length, cannot be written in OpenAPI). Failures are
collected per operation rather than stopping the run. Prints the request count, the status
histogram, the findings, and whether the server survived; writes a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

ADMIN = "bench-fuzz-admin-key-0123456789"


def start(root: Path, keys: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    """Publish two small ALS versions and start ``recforge serve`` on a free loopback port."""
    from recforge.models.als import ALS
    from recforge.registry import ModelRegistry
    from recforge.testing import start_server, toy_dataset

    reg = ModelRegistry(root / "registry")
    if reg.active_version() is None:
        ds = toy_dataset(n_users=200, n_items=120)
        reg.publish(ALS(factors=16, iterations=5).fit(ds), metrics={"ndcg@10": 0.3}, promote=True)
        reg.publish(ALS(factors=8, iterations=5).fit(ds), metrics={"ndcg@10": 0.2}, promote=False)
    env = {
        "RECFORGE_ADMIN_KEYS": f'["{ADMIN}"]' if keys else "[]",
        "RECFORGE_MAX_K": "200",
        "RECFORGE_MAX_BATCH": "500",
        "RECFORGE_MAX_BODY_BYTES": str(1024 * 1024),
        "RECFORGE_WEB": "false",
    }
    db = f"sqlite:///{root / 'events.db'}"
    proc, port = start_server(reg.root, db, root / "server.log", env=env, timeout=120)
    return proc, f"http://127.0.0.1:{port}"


def stored_state(root: Path) -> dict[str, Any]:
    """What a request could change: events, items, keys and the active version."""
    from recforge.registry import ModelRegistry
    from recforge.serving.store import EventStore

    store = EventStore(f"sqlite:///{root / 'events.db'}")
    try:
        return {
            "events": store.count_events(),
            "items": store.count_items(),
            "keys": len(store.api_key_scopes()),
            "active": ModelRegistry(root / "registry").active_version(),
        }
    finally:
        store.close()


def fuzz_one(
    strategy: Any,
    examples: int,
    seed: int,
    base: str,
    tally: dict[str, Any],
    headers: dict[str, str],
) -> list[str]:
    """Run ``examples`` cases of one operation/mode; returns the distinct failure messages."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    findings: list[str] = []

    @hseed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        report_multiple_bugs=True,
    )
    @given(case=strategy)
    def one(case: Any) -> None:
        tally["requests"] += 1
        try:
            response = case.call_and_validate(
                base_url=base,
                headers=headers,
                excluded_checks=[positive_data_acceptance],
            )
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status is not None:
                tally["status"][status] += 1
            raise
        tally["status"][response.status_code] += 1
        if "Traceback" in response.text:
            raise AssertionError(f"traceback in the body of {case.method} {case.path}")

    try:
        one()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # hypothesis re-raises the (shrunk) failures as a group
        findings.append(f"{type(exc).__name__}: {str(exc)[:1500]}")
    return findings


def fuzz_mode(root: Path, mode: str, examples: int, seed: int) -> dict[str, Any]:
    """One schema fuzz run on a fresh server; the summary of its requests and findings."""
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    headers = {"X-API-Key": ADMIN} if mode == "admin" else {}
    proc, base = start(root, keys=mode != "nokeys")
    before = stored_state(root)
    tally: dict[str, Any] = {"requests": 0, "status": Counter()}
    per_op: dict[str, int] = {}
    findings: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    try:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        for result in schema.get_all_operations():
            op = result.ok()
            has_input = bool(op.path_parameters or op.query or op.body)
            for gen in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if gen is GenerationMode.NEGATIVE and not has_input:
                    continue
                label = f"{op.label} [{gen.value}]"
                n0 = tally["requests"]
                try:
                    strategy = op.as_strategy(generation_mode=gen)
                    found = fuzz_one(strategy, examples, seed, base, tally, headers)
                except Unsatisfiable:
                    found = []
                found = [f for f in found if not f.startswith("Unsatisfiable")]
                per_op[label] = tally["requests"] - n0
                if found:
                    findings[label] = found
                print(f"{mode:<9} {label:<60} {per_op[label]:>6} requests  findings {len(found)}")
        alive = proc.poll() is None
    finally:
        stop(proc)
    status = dict(sorted(tally["status"].items()))
    after = stored_state(root)
    return {
        "mode": mode,
        "requests": tally["requests"],
        "operations": len({k.rsplit(" [", 1)[0] for k in per_op}),
        "seconds": round(time.perf_counter() - t0, 1),
        "status_counts": status,
        "server_errors": sum(v for k, v in status.items() if k >= 500),
        "state_changed": before != after,
        "findings": findings,
        "server_alive_after": alive,
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def adversarial_run(root: Path, rounds: int, seed: int) -> dict[str, Any]:
    """Requests with adversarial ids on the integer-id model; then fold-in and a restart."""
    import random

    import httpx

    from recforge.testing import ADVERSARIAL_IDS, adversarial_id

    rng = random.Random(seed)
    proc, base = start(root, keys=True)
    auth = {"X-API-Key": ADMIN}
    status: Counter[int] = Counter()
    t0 = time.perf_counter()
    try:
        with httpx.Client(base_url=base, timeout=10, headers=auth) as c:
            for n in range(rounds):
                item, user = (
                    rng.choice(ADVERSARIAL_IDS) if rng.random() < 0.5 else adversarial_id(rng)
                    for _ in range(2)
                )
                event = {"event_id": f"adv-{n}", "user": user, "item": item}
                for method, path, params, body in (
                    ("POST", "/events", None, event),
                    ("GET", f"/recommendations/{quote(user, safe='')}", {"exclude": item}, None),
                    ("GET", f"/users/{quote(user, safe='')}/history", None, None),
                    ("GET", f"/items/{quote(item, safe='')}/similar", {"k": 3}, None),
                    ("POST", "/recommendations", None, {"items": [item], "values": [2.0]}),
                    ("PUT", "/items", None, {"items": [{"id": item, "attributes": {}}]}),
                ):
                    status[c.request(method, path, params=params, json=body).status_code] += 1
            good = {"event_id": "after-adversarial", "user": "u1", "item": "104"}
            folded = (
                c.post("/events", json=good).status_code == 200
                and "fold-in" in (c.get("/recommendations/u1").json()["reason"])
            )
    finally:
        stop(proc)
    seconds = time.perf_counter() - t0
    proc, base = start(root, keys=True)  # raises if the stored events stop the start-up
    stop(proc)
    return {
        "mode": "adversarial ids",
        "requests": sum(status.values()),
        "seconds": round(seconds, 1),
        "status_counts": dict(sorted(status.items())),
        "server_errors": sum(v for k, v in status.items() if k >= 500),
        "good_event_folded_in": folded,
        "restarted": True,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--examples", type=int, default=100, help="cases per operation and mode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="admin,anonymous,nokeys")
    ap.add_argument("--adversarial", type=int, default=1000, help="rounds of six requests")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]

    root = Path(tempfile.mkdtemp(prefix="recforge-fuzz-"))
    runs = []
    for mode in args.modes.split(","):
        runs.append(fuzz_mode(root / mode, mode, args.examples, args.seed))
    if args.adversarial:
        runs.append(adversarial_run(root / "adversarial", args.adversarial, args.seed))
    for r in runs:
        print(
            f"{r['mode']}: {r['requests']} requests in {r['seconds']:.0f} s; status counts "
            f"{r['status_counts']}; 5xx: {r['server_errors']}; state changed: "
            f"{r.get('state_changed', '-')}; findings: {len(r.get('findings', {}))}"
        )
        for label, found in r.get("findings", {}).items():
            print(f"--- {label}")
            for f in found:
                print(f)
    total = sum(r["requests"] for r in runs)
    print(f"total: {total} requests, 5xx: {sum(r['server_errors'] for r in runs)}")
    out = root / "fuzz-results.json"
    out.write_text(
        json.dumps({"seed": args.seed, "examples": args.examples, "runs": runs}, indent=2)
    )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
