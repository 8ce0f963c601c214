"""Several worker processes behind one port: ``recforge serve --workers N``.

One Python process serves requests under one interpreter lock, so it uses one core. The
supervisor here (:func:`supervise`) binds the port and starts ``N`` workers, each a fresh
interpreter running the same app behind the same guarded uvicorn protocol as the one-process
service. What they share, and how:

* **The port.** The supervisor binds one listening socket per worker on the same address
  with ``SO_REUSEPORT`` (the kernel spreads new connections over them) and hands worker
  ``k`` socket ``k`` as an inherited file descriptor. The supervisor keeps the sockets open,
  so a restarted worker takes over the connections queued for its predecessor, and no other
  program can take the port while a worker restarts.
* **The model.** Each worker loads the active version with memory-mapped arrays
  (:func:`recforge.models._io.load_model` ``mapped=True``): the arrays are extracted once
  into uncompressed ``.npy`` files and every worker maps the same pages. Each worker polls
  the registry and swaps on its own, within ``poll_interval_s`` of a promotion.
* **The events.** The store is the source of truth. Each worker counts the writes it has
  acknowledged in a shared array (:class:`PeerWrites`, a small memory-mapped file); before
  handling a request, a worker that sees another's count ahead of what it has caught up with
  reads the store (``OnlineState.sync``), so an event acknowledged by one worker is visible to
  the next request on any worker (read-your-writes). Writers outside this service (other
  replicas) are seen within ``sync_interval_s``, as before.
* **The limits.** ``max_concurrency``, ``max_queue``, ``max_connections`` and
  ``max_anonymous_bodies`` are limits of the whole service, divided evenly among the workers
  (:func:`worker_settings`).
* **Metrics.** Workers write their Prometheus values to files in a shared directory
  (``prometheus_client`` multiprocess mode) and ``/metrics`` on any worker reports the sum over
  all of them (counters and histograms summed, requests in flight summed over live workers,
  ``recforge_model_info`` one series per live worker with a ``pid`` label).

Signals: SIGTERM or SIGINT to the supervisor sends SIGTERM to every worker (uvicorn stops
accepting, finishes the requests in flight), waits up to ``shutdown_timeout_s`` and kills what
is left. A worker that dies is restarted on the same socket; more than
:data:`MAX_RESTARTS` exits within :data:`RESTART_WINDOW_S` seconds stop the service with exit
status 1 and a message naming the worker and its exit status. A worker whose supervisor
disappears (killed with SIGKILL) stops by itself within a second.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from recforge.exceptions import ConfigError
from recforge.serving.settings import ServiceSettings

__all__ = [
    "MAX_RESTARTS",
    "RESTART_WINDOW_S",
    "WRITE_KINDS",
    "PeerWrites",
    "bind_sockets",
    "supervise",
    "worker_main",
    "worker_settings",
]

log = logging.getLogger("recforge.serving.workers")

MAX_RESTARTS = 5
"""Worker exits tolerated within :data:`RESTART_WINDOW_S`; one more stops the service."""
RESTART_WINDOW_S = 60.0

WRITE_KINDS = ("/events", "/items")
"""Paths whose writes other workers read back: events (online state), items (the model)."""

_SPEC_ENV = "RECFORGE_WORKER_SPEC"
_WORKER_CODE = "from recforge.serving._workers import worker_main; worker_main()"
_WRITES_FILE = "writes.bin"
_METRICS_DIR = "metrics"


# --------------------------------------------------------------------------- shared state
class PeerWrites:
    """Writes acknowledged by each worker, in a file every worker maps.

    Two int64 counters per worker: writes of events and writes of items
    (:data:`WRITE_KINDS`). Worker ``k`` is the only writer of its counters and only increases
    them, so no lock is needed: an aligned 8-byte store is seen whole by the others. A worker
    compares the totals with those it last caught up with (:meth:`totals`).

    Parameters
    ----------
    path
        The file (made by :meth:`create`).
    index
        This worker's slot.
    """

    def __init__(self, path: Path, index: int) -> None:
        with open(path, "r+b") as fh:  # the mapping outlives the file object
            self._map = mmap.mmap(fh.fileno(), 0)
        self._counts = np.frombuffer(self._map, dtype=np.int64).reshape(-1, len(WRITE_KINDS))
        if not 0 <= index < self._counts.shape[0]:
            raise ConfigError(f"worker slot {index} outside the {len(self._counts)} of {path}")
        self.index = index

    @staticmethod
    def create(path: Path, workers: int) -> Path:
        """Make the file for ``workers`` workers, every counter zero."""
        path.write_bytes(bytes(8 * len(WRITE_KINDS) * workers))
        return path

    def wrote(self, kind: int) -> None:
        """Count one acknowledged write of this worker (call before the answer is sent).

        ``kind`` is an index of :data:`WRITE_KINDS`.
        """
        self._counts[self.index, kind] += 1

    def totals(self) -> tuple[int, ...]:
        """Writes of each kind acknowledged by all workers so far."""
        return tuple(int(x) for x in self._counts.sum(axis=0))


def worker_settings(settings: ServiceSettings, workers: int) -> ServiceSettings:
    """The settings of one of ``workers`` workers: the service's limits divided among them.

    ``max_concurrency``, ``max_connections`` and ``max_anonymous_bodies`` become
    ``limit // workers`` (at least 1), ``max_queue`` ``max_queue // workers``; so the whole
    service never admits more than the configured limits (unless a limit is below the number
    of workers, where each worker still gets one).
    """
    if workers <= 1:
        return settings
    s = settings
    return s.model_copy(
        update={
            "max_concurrency": max(1, s.max_concurrency // workers),
            "max_queue": s.max_queue // workers,
            "max_connections": max(1, s.max_connections // workers),
            "max_anonymous_bodies": max(1, s.max_anonymous_bodies // workers),
            "workers": workers,
        }
    )


# --------------------------------------------------------------------------- sockets
def bind_sockets(host: str, port: int, n: int, backlog: int = 2048) -> list[socket.socket]:
    """``n`` listening sockets on ``host:port`` sharing it with ``SO_REUSEPORT``.

    Port 0 picks a free port for the first socket; the others bind the same one.

    Raises
    ------
    ConfigError
        When the address cannot be bound (in use, not local) or the platform lacks
        ``SO_REUSEPORT``.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers needs SO_REUSEPORT (Linux, macOS, BSD)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    out: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = int(sock.getsockname()[1])
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in out:
            sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
    return out


# --------------------------------------------------------------------------- supervisor
class _Supervisor:
    def __init__(
        self, settings: ServiceSettings, workers: int, log_level: str, run_dir: Path
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.log_level = log_level
        self.run_dir = run_dir
        self.sockets = bind_sockets(settings.host, settings.port, workers)
        self.port = int(self.sockets[0].getsockname()[1])
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.exits: deque[float] = deque()
        self.stop = threading.Event()
        self.failure: str | None = None
        (run_dir / _METRICS_DIR).mkdir()
        PeerWrites.create(run_dir / _WRITES_FILE, workers)

    def spawn(self, index: int) -> None:
        sock = self.sockets[index]
        spec = {
            "settings": self.settings.model_dump(mode="json"),
            "index": index,
            "workers": self.workers,
            "fd": sock.fileno(),
            "run_dir": str(self.run_dir),
            "log_level": self.log_level,
        }
        env = dict(os.environ)
        env[_SPEC_ENV] = json.dumps(spec)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.run_dir / _METRICS_DIR)
        self.procs[index] = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE],
            env=env,
            pass_fds=(sock.fileno(),),
            process_group=0,  # a terminal's Ctrl-C reaches the supervisor, which forwards it
        )

    def reap(self) -> None:
        """Restart workers that exited, or give up when they keep exiting."""
        from prometheus_client import multiprocess

        for index, proc in enumerate(self.procs):
            if proc is None or proc.poll() is None:
                continue
            multiprocess.mark_process_dead(proc.pid, str(self.run_dir / _METRICS_DIR))
            now = time.monotonic()
            self.exits.append(now)
            while self.exits and self.exits[0] < now - RESTART_WINDOW_S:
                self.exits.popleft()
            if len(self.exits) > MAX_RESTARTS:
                self.failure = (
                    f"worker {index} exited with status {proc.returncode}; {len(self.exits)} "
                    f"worker exits within {RESTART_WINDOW_S:g} s, stopping the service"
                )
                self.stop.set()
                return
            log.error(
                "worker %d (pid %d) exited with status %s; restarting it",
                index,
                proc.pid,
                proc.returncode,
            )
            self.spawn(index)

    def shutdown(self) -> None:
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for p in live:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_timeout_s
        for p in live:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in time; killing it", p.pid)
                p.kill()
                p.wait()
        for sock in self.sockets:
            sock.close()

    def run(self) -> int:
        def on_signal(signum: int, frame: Any) -> None:
            self.stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.workers):
                self.spawn(index)
            pids = ", ".join(str(p.pid) for p in self.procs if p is not None)
            log.info(
                "recforge serving on http://%s:%d with %d workers (pids %s)",
                self.settings.host,
                self.port,
                self.workers,
                pids,
            )
            while not self.stop.wait(0.2):
                self.reap()
        finally:
            self.shutdown()
            for s, handler in previous.items():
                signal.signal(s, handler)
        if self.failure is not None:
            log.error("%s", self.failure)
            return 1
        return 0


def supervise(settings: ServiceSettings, workers: int, *, log_level: str = "info") -> int:
    """Serve ``settings`` with ``workers`` worker processes until SIGTERM or SIGINT.

    Parameters
    ----------
    settings
        Service settings; the limits in them are for the whole service.
    workers
        Number of worker processes (at least 2; one worker is :func:`serving.app.serve`).
    log_level
        uvicorn log level of the workers.

    Returns
    -------
    int
        Exit status: 0 after a signal, 1 when workers kept exiting.

    Raises
    ------
    ConfigError
        When the port cannot be bound or the service would listen beyond localhost
        without a key.
    """
    from recforge.serving.store import EventStore

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    store = EventStore(  # creates the tables once, before the workers open the store
        settings.db, table_prefix=settings.table_prefix, busy_timeout_s=settings.db_timeout_s
    )
    settings.check_bind(store_has_keys=bool(store.api_key_scopes()))
    store.close()
    run_dir = Path(tempfile.mkdtemp(prefix="recforge-workers-"))
    try:
        return _Supervisor(settings, workers, log_level, run_dir).run()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------- worker
def _watch_parent(server: Any) -> None:
    parent = os.getppid()
    while not server.should_exit:
        if os.getppid() != parent:  # the supervisor is gone: nobody restarts or stops us
            server.should_exit = True
            return
        time.sleep(1.0)


def worker_main() -> None:
    """Entry point of a worker process (started by the supervisor, never by hand)."""
    raw = os.environ.pop(_SPEC_ENV, None)
    if raw is None:
        raise SystemExit("recforge worker: started without its specification")
    spec = json.loads(raw)
    settings = ServiceSettings(**spec["settings"])
    workers = int(spec["workers"])
    run_dir = Path(spec["run_dir"])
    sock = socket.socket(fileno=int(spec["fd"]))
    run_worker(
        worker_settings(settings, workers),
        sock,
        PeerWrites(run_dir / _WRITES_FILE, int(spec["index"])),
        log_level=str(spec["log_level"]),
    )


def run_worker(
    settings: ServiceSettings, sock: socket.socket, peers: PeerWrites, *, log_level: str
) -> None:
    """Serve the app on an inherited listening socket until SIGTERM/SIGINT."""
    import uvicorn
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from recforge.serving.app import create_app, single_blas_thread, uvicorn_config
    from recforge.serving.store import EventStore

    single_blas_thread()
    store = EventStore(
        settings.db, table_prefix=settings.table_prefix, busy_timeout_s=settings.db_timeout_s
    )
    app = create_app(settings, store=store, peers=peers)
    metrics = app.state.recforge.metrics
    metrics.registry = CollectorRegistry()  # /metrics reports every worker's files, summed
    MultiProcessCollector(metrics.registry)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level))
    threading.Thread(target=_watch_parent, args=(server,), daemon=True).start()
    server.run(sockets=[sock])
