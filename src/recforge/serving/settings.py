"""Configuration of the REST service (one ``pydantic-settings`` class, ``RECFORGE_`` env vars)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recforge.exceptions import ConfigError

__all__ = ["ServiceSettings", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on the local machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServiceSettings(BaseSettings):
    """Settings of ``recforge serve``; every field can be set as ``RECFORGE_<NAME>``.

    API keys are given as raw secrets (``RECFORGE_WRITE_KEYS='["k1"]'``) or as SHA-256 digests
    prefixed with ``sha256:``; only digests are kept in memory. Keys can also live hashed in the
    event store's ``api_keys`` table.
    """

    model_config = SettingsConfigDict(env_prefix="RECFORGE_", extra="forbid")

    registry: Path | None = None
    """Model registry directory; the active version is served and polled for changes."""
    model_dir: Path | None = None
    """A single saved model to serve (no hot swap)."""
    db: str = "sqlite:///recforge-events.db"
    """Event store URL (SQLite file or ``postgresql+psycopg://...``)."""
    table_prefix: str = "recforge_"
    """Prefix of the store's table names."""
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    write_keys: list[str] = Field(default_factory=list)
    """Keys allowed to send events and update items."""
    admin_keys: list[str] = Field(default_factory=list)
    """Keys allowed to do everything, including promote/rollback and /metrics."""
    read_keys: list[str] = Field(default_factory=list)
    """Keys allowed to read user data (histories, the user list, explanations); write and
    admin keys may too."""
    require_read_key: bool | None = None
    """Whether user data needs a key (read, write or admin); ``None`` (default): when
    listening beyond localhost."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names accepted besides localhost, 127.0.0.1 and ::1 in no-key mode (where
    requests naming another ``Host`` are refused, against DNS rebinding)."""
    metrics_public: bool = False
    """Serve /metrics without a key (for scrapers on a private network)."""
    max_k: int = Field(1000, ge=1, le=10000)
    max_explain_k: int = Field(100, ge=1, le=10000)
    """Largest ``k`` of a list with explanations (each item costs a model explanation)."""
    max_batch: int = Field(10000, ge=1, le=100000)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_future_skew_s: int = Field(300, ge=0)
    """Events stamped further in the future than this are rejected (422)."""
    max_concurrency: int = Field(8, ge=1)
    """Requests handled at once; more are answered 503 with Retry-After. One process runs
    Python under one lock, so a few requests in flight already keep it busy; more only queue
    (measured: 32 gave a p99 of ~200 ms for admitted requests at 1,500 req/s offered, 8 gave
    ~30 ms at the same throughput). Raise it when requests wait on a remote database."""
    max_queue: int = Field(16, ge=0)
    """Requests that may wait for a slot when ``max_concurrency`` are running (newest first)."""
    queue_timeout_s: float = Field(0.05, ge=0)
    """Longest wait for a slot before 503 with Retry-After (0: refuse at once)."""
    retry_after_s: int = Field(1, ge=1)
    max_connections: int = Field(1000, ge=1)
    """Open connections beyond which new ones are answered 503 with Retry-After."""
    header_timeout_s: float = Field(10.0, gt=0)
    """A request head must arrive completely within this many seconds of its first byte."""
    body_timeout_s: float = Field(30.0, gt=0)
    """A request body must arrive completely within this many seconds (else 408). Bodies are
    read before a request takes one of the ``max_concurrency`` slots."""
    max_anonymous_bodies: int = Field(32, ge=1)
    """Bodies of requests without a valid key read at once; more get 503 with Retry-After.
    Requests with a valid key are never held back by them."""
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    """Largest request head (request line and headers); a larger one gets 431."""
    db_timeout_s: float = Field(1.0, gt=0)
    """Longest wait for a locked database; then the request gets 503 with Retry-After."""
    http: Literal["auto", "h11", "httptools"] = "auto"
    """HTTP/1.1 parser: httptools (C) when installed, else h11 (pure Python)."""
    poll_interval_s: float = Field(2.0, gt=0)
    """How often the registry's active pointer is checked."""
    sync_interval_s: float = Field(0.5, gt=0)
    """How often events written by other replicas are read into the online state."""
    online_history: int = Field(200, ge=1, le=10000)
    """Most recent events per user kept for online updates (fold-in uses these; exclusion of
    seen items always covers every event the store holds for the user)."""
    online_users: int = Field(100_000, ge=1)
    """Users whose recent events are kept in memory (least recently active are dropped)."""
    online_events: int = Field(1_000_000, ge=1)
    """Events kept in memory in all; least recently active users are dropped first. Each
    event takes about 160 bytes and each user about 1.1 kB, so the defaults bound the online
    state near 270 MB (the former bound, 100,000 users x 200 events, allowed about 8 GiB)."""
    web: bool = True
    """Serve the web page at ``/``."""
    workers: int = Field(1, ge=1, le=256)
    """Worker processes behind the port (see ``docs/deployment.md``, sizing). With more than
    one, ``max_concurrency``, ``max_queue``, ``max_connections`` and
    ``max_anonymous_bodies`` are limits of the whole service, divided evenly among the
    workers (each gets ``limit // workers``, at least 1; ``max_queue`` at least 0)."""
    mapped_arrays: bool = True
    """Map model arrays read-only from an uncompressed cache beside the model (made once,
    see ``recforge.models._io``), so workers share one copy; ``False`` decompresses them into
    each process."""
    shutdown_timeout_s: float = Field(30.0, gt=0)
    """With several workers: how long a worker may take to finish its requests after
    SIGTERM before it is killed."""

    @model_validator(mode="after")
    def _check(self) -> ServiceSettings:
        if self.registry is not None and self.model_dir is not None:
            raise ConfigError("give either registry or model_dir, not both")
        return self

    @property
    def has_keys(self) -> bool:
        """Whether any key is configured in the settings."""
        return bool(self.write_keys or self.admin_keys or self.read_keys)

    @property
    def public_bind(self) -> bool:
        """Whether the service listens beyond localhost."""
        return not is_loopback(self.host)

    @property
    def user_data_needs_key(self) -> bool:
        """Whether histories, the user list and explanations need a key."""
        if self.require_read_key is None:
            return self.public_bind
        return self.require_read_key

    def check_bind(self, store_has_keys: bool = False) -> None:
        """Refuse to listen beyond localhost when no API key is configured.

        Raises
        ------
        ConfigError
            When ``host`` is not a loopback address and no key exists.
        """
        if self.public_bind and not (self.has_keys or store_has_keys):
            raise ConfigError(
                f"refusing to listen on {self.host!r} without an API key: set "
                "RECFORGE_WRITE_KEYS / RECFORGE_ADMIN_KEYS (or create keys in the store), "
                "or listen on 127.0.0.1"
            )
