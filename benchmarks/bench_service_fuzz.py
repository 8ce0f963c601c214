"""Schema fuzzing of a real ``recforge serve`` process on loopback (never run by pytest).

    .venv/bin/python benchmarks/bench_service_fuzz.py [--examples 100] [--seed 0]

Starts the service (uvicorn, one worker, SQLite store, a registry with two ALS versions, an
admin key and the tight limits k <= 200, 500 events per batch, 1 MiB bodies), loads its own
``/openapi.json`` with schemathesis and, for every operation, sends ``--examples`` generated
valid requests and as many invalid ones (where an invalid request exists), all with the admin
key so authorised writes and admin routes are exercised. Every response goes through
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

ADMIN = "bench-fuzz-admin-key-0123456789"


def start(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Publish two small ALS versions and start ``recforge serve`` on a free loopback port."""
    from recforge.models.als import ALS
    from recforge.registry import ModelRegistry
    from recforge.testing import start_server, toy_dataset

    ds = toy_dataset(n_users=200, n_items=120)
    reg = ModelRegistry(root / "registry")
    reg.publish(ALS(factors=16, iterations=5).fit(ds), metrics={"ndcg@10": 0.3}, promote=True)
    reg.publish(ALS(factors=8, iterations=5).fit(ds), metrics={"ndcg@10": 0.2}, promote=False)
    env = {
        "RECFORGE_ADMIN_KEYS": f'["{ADMIN}"]',
        "RECFORGE_MAX_K": "200",
        "RECFORGE_MAX_BATCH": "500",
        "RECFORGE_MAX_BODY_BYTES": str(1024 * 1024),
        "RECFORGE_WEB": "false",
    }
    db = f"sqlite:///{root / 'events.db'}"
    proc, port = start_server(reg.root, db, root / "server.log", env=env, timeout=120)
    return proc, f"http://127.0.0.1:{port}"


def fuzz_one(
    strategy: Any, examples: int, seed: int, base: str, tally: dict[str, Any]
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
                headers={"X-API-Key": ADMIN},
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


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--examples", type=int, default=100, help="cases per operation and mode")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]

    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    root = Path(tempfile.mkdtemp(prefix="recforge-fuzz-"))
    proc, base = start(root)
    tally: dict[str, Any] = {"requests": 0, "status": Counter()}
    per_op: dict[str, int] = {}
    findings: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    try:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        for result in schema.get_all_operations():
            op = result.ok()
            has_input = bool(op.path_parameters or op.query or op.body)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if mode is GenerationMode.NEGATIVE and not has_input:
                    continue
                label = f"{op.label} [{mode.value}]"
                before = tally["requests"]
                try:
                    found = fuzz_one(
                        op.as_strategy(generation_mode=mode), args.examples, args.seed, base, tally
                    )
                except Unsatisfiable:
                    found = []
                found = [f for f in found if not f.startswith("Unsatisfiable")]
                per_op[label] = tally["requests"] - before
                if found:
                    findings[label] = found
                print(f"{label:<60} {per_op[label]:>6} requests  findings {len(found)}")
        alive = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    elapsed = time.perf_counter() - t0
    status = dict(sorted(tally["status"].items()))
    summary = {
        "requests": tally["requests"],
        "operations": len({k.rsplit(" [", 1)[0] for k in per_op}),
        "seconds": round(elapsed, 1),
        "status_counts": status,
        "server_errors": sum(v for k, v in status.items() if k >= 500),
        "findings": findings,
        "server_alive_after": alive,
        "examples_per_operation_and_mode": args.examples,
        "seed": args.seed,
    }
    print(
        f"\n{summary['requests']} requests over {summary['operations']} operations in "
        f"{elapsed:.0f} s; status counts {status}; 5xx: {summary['server_errors']}; "
        f"operations with findings: {len(findings)}; server alive: {alive}"
    )
    for label, found in findings.items():
        print(f"--- {label}")
        for f in found:
            print(f)
    out = root / "fuzz-results.json"
    out.write_text(json.dumps(summary, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
