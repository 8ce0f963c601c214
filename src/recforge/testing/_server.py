"""Run a real ``recforge serve`` process on a loopback port (end-to-end tests and benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["free_port", "start_server"]

#: single-threaded numerics, so several servers and the load generator share the cores fairly
QUIET_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    registry: Path,
    db: str,
    log: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    timeout: float = 90.0,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``python -m recforge serve`` and wait until ``/readyz`` answers 200.

    Parameters
    ----------
    registry
        Model registry directory to serve.
    db
        Event store URL.
    log
        File receiving the server's output (appended).
    port
        Port to listen on (default: a free one).
    env
        Extra environment variables (API keys, limits); numeric libraries run single-threaded.
    args
        Extra ``recforge serve`` options.
    timeout
        Seconds to wait for readiness.

    Returns
    -------
    process, port

    Raises
    ------
    RuntimeError
        If the server exits or is not ready in time (with the end of its log).
    """
    import httpx

    port = free_port() if port is None else port
    command = [sys.executable, "-m", "recforge", "serve", "--registry", str(registry)]
    command += ["--db", db, "--port", str(port), "--log-level", "warning", *args]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            env={**os.environ, **QUIET_THREADS, **dict(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(
        f"server not ready in {timeout:.0f} s: {log.read_text(errors='replace')[-2000:]}"
    )
