"""Durable event store (SQLAlchemy Core): events, items, users and hashed API keys.

SQLite is the embedded default; it is opened in WAL mode with ``synchronous=FULL`` so that a
committed transaction survives a power loss, not only a process crash. PostgreSQL is used by
URL (``postgresql+psycopg://...``) and keeps its default ``synchronous_commit=on``.

Guarantees
----------
* :meth:`EventStore.add_events` returns only after the transaction has committed, so a caller
  that acknowledges an event after this call never acknowledges a lost write.
* ``event_id`` is unique: ingestion is idempotent (``INSERT ... ON CONFLICT DO NOTHING`` in
  both dialects) and the result says exactly which events were new and which were duplicates.
* Every statement uses bound parameters; table names come from a validated prefix only.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from recforge.exceptions import ConfigError

__all__ = [
    "EVENT_TYPES",
    "MAX_STRENGTH",
    "MAX_VALUE",
    "Cursor",
    "Event",
    "EventStore",
    "IngestResult",
    "hash_api_key",
]

EVENT_TYPES: tuple[str, ...] = ("view", "click", "purchase", "rating")
"""Allowed values of an event's ``type``."""

MAX_STRENGTH = 100.0
"""Largest strength of a ``view``, ``click`` or ``purchase`` event (1.0: one interaction)."""

MAX_VALUE = 1000.0
"""Largest magnitude of a rating event's value or of a history value sent for fold-in."""

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[str, ...] = ("read", "write", "admin")
"""Key scopes, each allowing what the ones before it allow."""

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_CHUNK = 500  # rows per multi-row INSERT (7 columns: well under SQLite's variable limit)
# the inserting transaction's id (assigned by its first write, i.e. this insert); SQLite: 0
_TXID_DEFAULT = {"postgresql": "txid_current()", "sqlite": "0"}


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of an API key (keys are stored and compared only as digests)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Event:
    """One user-item interaction.

    Attributes
    ----------
    event_id : str
        Client-chosen unique id; a repeated id is a duplicate and is not stored twice.
    user, item : str
        External ids.
    type : str
        One of :data:`EVENT_TYPES`.
    value : float
        Strength (rating value, quantity; 1.0 for implicit events).
    timestamp : int
        Epoch seconds of the interaction.
    seq : int
        Store-assigned, increasing sequence number (0 before the event is stored).
    txid : int
        Id of the transaction that stored it (PostgreSQL; 0 on SQLite): with ``seq`` the
        event's place in the commit-ordered log (see :class:`Cursor`).
    """

    event_id: str
    user: str
    item: str
    type: str = "view"
    value: float = 1.0
    timestamp: int = 0
    seq: int = 0
    txid: int = 0


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in the store's commit-ordered log of events.

    Events are read in ``(txid, seq)`` order, and only from transactions that have finished:
    on PostgreSQL ``txid`` is the id of the inserting transaction and a read returns events
    of transactions below the oldest one still running, so an event whose sequence number
    was taken by a transaction that commits later is read when it commits, never skipped.
    On SQLite writers are serialised, so ``txid`` is 0 and the order is ``seq``.

    Attributes
    ----------
    txid, seq : int
        The last event read (``-1, 0``: none).
    floor : int
        Only events with a larger ``seq`` belong after this position (a watermark recorded as
        a bare sequence number, before positions had a ``txid``).
    """

    txid: int = -1
    seq: int = 0
    floor: int = 0

    @classmethod
    def after_seq(cls, seq: int) -> Cursor:
        """The position after every event with sequence number ``seq`` or lower."""
        return cls(-1, 0, int(seq))

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form (registry metadata ``extra``)."""
        return {"events_txid": self.txid, "events_seq": self.seq, "events_floor": self.floor}

    @classmethod
    def from_dict(cls, extra: Mapping[str, Any]) -> Cursor:
        """The position recorded by :meth:`to_dict`; a bare ``events_seq`` is a floor."""
        seq = int(extra.get("events_seq", 0) or 0)
        if "events_txid" not in extra:
            return cls.after_seq(seq)
        return cls(int(extra["events_txid"]), seq, int(extra.get("events_floor", 0) or 0))

    def covers(self, event: Event) -> bool:
        """Whether ``event`` is at or before this position."""
        return event.seq <= self.floor or (event.txid, event.seq) <= (self.txid, self.seq)

    def advanced(self, event: Event) -> Cursor:
        """This position moved to ``event`` (read in log order)."""
        return Cursor(event.txid, event.seq, self.floor)


@dataclass(frozen=True)
class IngestResult:
    """Outcome of one committed batch.

    Attributes
    ----------
    accepted : list of str
        Event ids stored by this call.
    duplicates : list of str
        Event ids that were already stored (or repeated within the batch).
    """

    accepted: list[str]
    duplicates: list[str]


class EventStore:
    """Events, item attributes, users and API keys in SQLite or PostgreSQL.

    Parameters
    ----------
    url
        SQLAlchemy URL, e.g. ``sqlite:///events.db`` or
        ``postgresql+psycopg://user@host:5432/db``.
    table_prefix
        Prefix of every table name (lower-case letters, digits, ``_``), so several stores
        (or test runs) can share one database.
    create
        Create missing tables.
    pool_size
        Connection pool size for server databases.
    busy_timeout_s
        Longest wait for a lock (SQLite's busy timeout, PostgreSQL's ``lock_timeout``) or a
        pooled connection; then the statement fails with ``OperationalError`` (the service
        answers 503), so a locked database cannot hold requests for long.

    Raises
    ------
    ConfigError
        On an invalid prefix or an unsupported database dialect.
    """

    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = "recforge_",
        create: bool = True,
        pool_size: int = 8,
        busy_timeout_s: float = 30.0,
    ) -> None:
        if table_prefix and not _PREFIX_RE.match(table_prefix):
            raise ConfigError(
                f"table_prefix must match {_PREFIX_RE.pattern} (lower-case letters, digits, _), "
                f"got {table_prefix!r}"
            )
        self.url = url
        self.prefix = table_prefix
        parsed = sa.engine.make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"unsupported database {self.dialect!r} in db url: use sqlite:/// or "
                "postgresql+psycopg://"
            )
        self.busy_timeout_s = float(busy_timeout_s)
        self.engine: Engine = self._make_engine(url, pool_size)
        md = sa.MetaData()
        p = table_prefix
        self.events = sa.Table(
            f"{p}events",
            md,
            sa.Column(
                "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
            ),
            sa.Column("event_id", sa.String(256), nullable=False, unique=True),
            sa.Column("user_id", sa.String(256), nullable=False, index=True),
            sa.Column("item_id", sa.String(256), nullable=False),
            sa.Column("type", sa.String(16), nullable=False),
            sa.Column("value", sa.Float(), nullable=False),
            sa.Column("ts", sa.BigInteger(), nullable=False),
            sa.Column(
                "txid",
                sa.BigInteger(),
                nullable=False,
                server_default=sa.text(_TXID_DEFAULT[self.dialect]),
            ),
            sa.Index(f"{p}events_log", "txid", "seq"),
        )
        self.items = sa.Table(
            f"{p}items",
            md,
            sa.Column("item_id", sa.String(256), primary_key=True),
            sa.Column("attributes", sa.Text(), nullable=False),
            sa.Column("updated", sa.BigInteger(), nullable=False),
        )
        self.users = sa.Table(
            f"{p}users",
            md,
            sa.Column("user_id", sa.String(256), primary_key=True),
            sa.Column("first_seen", sa.BigInteger(), nullable=False),
        )
        self.api_keys = sa.Table(
            f"{p}api_keys",
            md,
            sa.Column("key_hash", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("scope", sa.String(16), nullable=False),
            sa.Column("created", sa.BigInteger(), nullable=False),
        )
        self.health = sa.Table(
            f"{p}health",
            md,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("checked", sa.Float(), nullable=False),
        )
        self.metadata = md
        if create:
            md.create_all(self.engine)
            self._add_txid_column()

    def _add_txid_column(self) -> None:
        """Give an events table created before the commit-ordered log its ``txid`` column."""
        columns = {c["name"] for c in sa.inspect(self.engine).get_columns(self.events.name)}
        if "txid" in columns:
            return
        name = self.events.name
        with self.engine.begin() as conn:
            # rows stored before are all committed: txid 0 orders them first, by seq
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN txid BIGINT NOT NULL DEFAULT 0")
            if self.dialect == "postgresql":
                default = _TXID_DEFAULT["postgresql"]
                conn.exec_driver_sql(f"ALTER TABLE {name} ALTER COLUMN txid SET DEFAULT {default}")
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {self.prefix}events_log ON {name} (txid, seq)"
            )

    # ------------------------------------------------------------------ engine
    def _make_engine(self, url: str, pool_size: int) -> Engine:
        if self.dialect == "sqlite":
            wait = self.busy_timeout_s
            engine = sa.create_engine(
                url, connect_args={"timeout": wait, "check_same_thread": False}
            )

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # Autocommit off is the driver default; PRAGMAs run outside a transaction.
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
                cur.close()

            return engine
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            from recforge.exceptions import MissingDependencyError

            raise MissingDependencyError(
                "PostgreSQL needs psycopg: pip install 'recforge[postgres]'"
            ) from exc
        return sa.create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=self.busy_timeout_s,
            connect_args={"options": f"-c lock_timeout={int(self.busy_timeout_s * 1000)}"},
        )

    def pragma(self, name: str) -> Any:
        """Value of an SQLite PRAGMA on a pooled connection (``journal_mode``, ``synchronous``)."""
        if self.dialect != "sqlite":
            raise ConfigError("pragma() is only meaningful for SQLite stores")
        if name not in ("journal_mode", "synchronous", "busy_timeout", "integrity_check"):
            raise ConfigError(f"pragma {name!r} is not one of the inspected pragmas")
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def can_write(self) -> bool:
        """Whether a write commits now: one row of the health table is written and committed.

        ``SELECT 1`` answers while the database is locked by another writer, full, or
        read-only; this probe fails in each case (after at most ``busy_timeout_s``).
        """
        ins = self._insert(self.health).values(id=1, checked=time.time())
        stmt = ins.on_conflict_do_update(
            index_elements=["id"], set_={"checked": ins.excluded.checked}
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt)
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def close(self) -> None:
        """Release all pooled connections."""
        self.engine.dispose()

    def drop(self) -> None:
        """Drop this store's tables (used to clean up test schemas)."""
        self.metadata.drop_all(self.engine)
        self.engine.dispose()

    # ------------------------------------------------------------------ events
    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)

    def add_events(self, events: Sequence[Event]) -> IngestResult:
        """Store a batch of events in one transaction; returns after it commits.

        Parameters
        ----------
        events
            Events to store; ``seq`` is ignored (the store assigns it).

        Returns
        -------
        IngestResult
            Exactly which event ids were stored and which were duplicates.
        """
        if not events:
            return IngestResult([], [])
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        dup_in_batch: list[str] = []
        for e in events:
            if e.event_id in seen:
                dup_in_batch.append(e.event_id)
                continue
            seen.add(e.event_id)
            if e.type not in EVENT_TYPES:
                raise ConfigError(f"event {e.event_id!r}: type must be one of {EVENT_TYPES}")
            rows.append(
                {
                    "event_id": e.event_id,
                    "user_id": e.user,
                    "item_id": e.item,
                    "type": e.type,
                    "value": float(e.value),
                    "ts": int(e.timestamp),
                }
            )
        accepted: list[str] = []
        now = int(time.time())
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # one statement with six array parameters, whatever the batch size
                cols = ("event_id", "user_id", "item_id", "type", "value", "ts")
                arrays = tuple([r[c] for r in rows] for c in cols)
                accepted.extend(r[0] for r in conn.exec_driver_sql(self._unnest_sql(), arrays))
                rows_left: list[dict[str, Any]] = []
            else:
                rows_left = rows
            for start in range(0, len(rows_left), _CHUNK):
                chunk = rows_left[start : start + _CHUNK]
                sql = self._insert_events_sql(len(chunk))
                params = tuple(
                    v
                    for r in chunk
                    for v in (
                        r["event_id"],
                        r["user_id"],
                        r["item_id"],
                        r["type"],
                        r["value"],
                        r["ts"],
                    )
                )
                accepted.extend(r[0] for r in conn.exec_driver_sql(sql, params))
            users = sorted({r["user_id"] for r in rows})
            for start in range(0, len(users), _CHUNK):
                ustmt = (
                    self._insert(self.users)
                    .values(
                        [{"user_id": u, "first_seen": now} for u in users[start : start + _CHUNK]]
                    )
                    .on_conflict_do_nothing(index_elements=["user_id"])
                )
                conn.execute(ustmt)
        acc = set(accepted)
        duplicates = [r["event_id"] for r in rows if r["event_id"] not in acc] + dup_in_batch
        ordered = [r["event_id"] for r in rows if r["event_id"] in acc]
        return IngestResult(ordered, duplicates)

    def _insert_events_sql(self, n_rows: int) -> str:
        # Identifiers come from the validated prefix only; every value is a bound parameter.
        ph = "?" if self.dialect == "sqlite" else "%s"
        row = "(" + ", ".join([ph] * 6) + ")"
        return (
            f"INSERT INTO {self.events.name} (event_id, user_id, item_id, type, value, ts) "
            f"VALUES {', '.join([row] * n_rows)} "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )

    def _unnest_sql(self) -> str:
        return (
            f"INSERT INTO {self.events.name} (event_id, user_id, item_id, type, value, ts) "
            "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], "
            "%s::float8[], %s::int8[]) ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )

    def count_events(self) -> int:
        """Number of stored events."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(self.events)).scalar() or 0
            )

    def max_seq(self) -> int:
        """Largest event sequence number (0 when empty)."""
        with self.engine.connect() as conn:
            v = conn.execute(sa.select(sa.func.max(self.events.c.seq))).scalar()
        return int(v or 0)

    def events_after(self, seq: int, limit: int = 100_000) -> list[Event]:
        """Events with sequence number above ``seq``, in log order (see :meth:`events_since`)."""
        return self.events_since(Cursor.after_seq(seq), limit)

    def _settled(self) -> Any:
        """Condition: the event's transaction has finished (always true on SQLite)."""
        if self.dialect != "postgresql":
            return sa.true()
        # the oldest transaction still running in this statement's snapshot; every event of
        # a transaction below it is committed (and visible) or rolled back
        xmin = sa.func.txid_snapshot_xmin(sa.func.txid_current_snapshot())
        return self.events.c.txid < xmin

    def _after(self, cursor: Cursor) -> Any:
        c = self.events.c
        return sa.and_(
            c.seq > int(cursor.floor),
            sa.tuple_(c.txid, c.seq) > sa.tuple_(int(cursor.txid), int(cursor.seq)),
        )

    def events_since(self, cursor: Cursor, limit: int = 100_000) -> list[Event]:
        """Committed events after ``cursor``, in log order (for the replicas' sync).

        No committed event is ever skipped: an event is returned once every transaction that
        could still commit before it has finished (see :class:`Cursor`), so reading on from
        the last event returned misses nothing. Advance with :meth:`Cursor.advanced`.
        """
        c = self.events.c
        q = sa.select(c.seq, c.event_id, c.user_id, c.item_id, c.type, c.value, c.ts, c.txid)
        q = q.where(self._after(cursor), self._settled())
        q = q.order_by(c.txid, c.seq).limit(int(limit))
        with self.engine.connect() as conn:
            return [_row_event(r) for r in conn.execute(q)]

    def cursor(self) -> Cursor:
        """The position after every event that is settled now (a retrain's watermark).

        Events after it are exactly those :meth:`events_since` returns later, so a model
        trained on ``events_frame(until=store.cursor())`` and an online state that starts
        from the same cursor together see every event once.
        """
        c = self.events.c
        q = sa.select(c.txid, c.seq).where(self._settled())
        q = q.order_by(c.txid.desc(), c.seq.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return Cursor() if row is None else Cursor(int(row[0]), int(row[1]))

    def user_events(self, user: str, limit: int = 200) -> list[Event]:
        """The user's most recent events, oldest first."""
        c = self.events.c
        q = sa.select(c.seq, c.event_id, c.user_id, c.item_id, c.type, c.value, c.ts, c.txid)
        q = q.where(c.user_id == user).order_by(c.seq.desc()).limit(int(limit))
        with self.engine.connect() as conn:
            rows = [_row_event(r) for r in conn.execute(q)]
        return rows[::-1]

    def user_items(self, user: str) -> list[str]:
        """Every distinct item the store holds an event of for ``user`` (any age)."""
        c = self.events.c
        q = sa.select(c.item_id).where(c.user_id == user).distinct()
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def event_ids(self) -> list[str]:
        """All stored event ids (for audits and durability checks)."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(self.events.c.event_id))]

    def events_frame(self, after_seq: int = 0, *, until: Cursor | None = None) -> pd.DataFrame:
        """Events as a DataFrame with columns ``seq, event_id, user, item, type, value, time``.

        Parameters
        ----------
        after_seq
            Only events with a larger sequence number.
        until
            Only events at or before this position (:meth:`cursor`), so that the frame and
            an online state starting from ``until`` split the events exactly.
        """
        c = self.events.c
        q = sa.select(c.seq, c.event_id, c.user_id, c.item_id, c.type, c.value, c.ts)
        q = q.where(c.seq > int(after_seq))
        if until is not None:
            q = q.where(
                sa.or_(
                    c.seq <= int(until.floor),
                    sa.tuple_(c.txid, c.seq) <= sa.tuple_(int(until.txid), int(until.seq)),
                )
            )
        q = q.order_by(c.seq)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        frame = pd.DataFrame(
            rows, columns=["seq", "event_id", "user", "item", "type", "value", "time"]
        )
        return frame.astype(
            {"seq": np.int64, "value": np.float64, "time": np.int64}, errors="ignore"
        )

    # ------------------------------------------------------------------ items and users
    def upsert_items(self, items: Mapping[str, Mapping[str, Any]]) -> int:
        """Add or replace item attributes (JSON objects); returns the number written."""
        if not items:
            return 0
        now = int(time.time())
        rows = [
            {
                "item_id": str(k),
                "attributes": json.dumps(dict(v), allow_nan=False, sort_keys=True),
                "updated": now,
            }
            for k, v in items.items()
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), _CHUNK):
                ins = self._insert(self.items).values(rows[start : start + _CHUNK])
                stmt = ins.on_conflict_do_update(
                    index_elements=["item_id"],
                    set_={"attributes": ins.excluded.attributes, "updated": ins.excluded.updated},
                )
                conn.execute(stmt)
        return len(rows)

    def get_items(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Attributes of the given items that are stored (missing ids are left out)."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        out: dict[str, dict[str, Any]] = {}
        c = self.items.c
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), _CHUNK):
                q = sa.select(c.item_id, c.attributes).where(
                    c.item_id.in_(wanted[start : start + _CHUNK])
                )
                for item_id, attrs in conn.execute(q):
                    out[item_id] = json.loads(attrs)
        return out

    def item_stamps(self, since: int | None = None) -> dict[str, int]:
        """Item id -> epoch seconds of its last update, for items updated at or after ``since``.

        The service reads this to re-apply items added with ``PUT /items`` to a model it
        loads (at start-up and at every hot swap) without reading every attribute.
        """
        c = self.items.c
        q = sa.select(c.item_id, c.updated)
        if since is not None:
            q = q.where(c.updated >= int(since))
        with self.engine.connect() as conn:
            return {i: int(t) for i, t in conn.execute(q)}

    def search_items(self, query: str, limit: int = 20) -> dict[str, dict[str, Any]]:
        """Items whose id or attributes contain ``query`` (case-insensitive substring)."""
        c = self.items.c
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = (
            sa.select(c.item_id, c.attributes)
            .where(
                sa.or_(
                    c.item_id.ilike(pattern, escape="\\"), c.attributes.ilike(pattern, escape="\\")
                )
            )
            .order_by(c.item_id)
            .limit(int(limit))
        )
        with self.engine.connect() as conn:
            return {i: json.loads(a) for i, a in conn.execute(q)}

    def count_items(self) -> int:
        """Number of items with stored attributes."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(self.items)).scalar() or 0
            )

    def search_users(self, query: str, limit: int = 20) -> list[str]:
        """User ids (seen in events) starting with ``query``."""
        c = self.users.c
        pattern = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = sa.select(c.user_id).where(c.user_id.like(pattern, escape="\\"))
        q = q.order_by(c.user_id).limit(int(limit))
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    # ------------------------------------------------------------------ API keys
    def create_api_key(self, name: str, scope: Scope = "write") -> str:
        """Create a random API key; only its SHA-256 digest is stored. Returns the key once."""
        if scope not in SCOPES:
            raise ConfigError(f"scope must be one of {SCOPES}, got {scope!r}")
        key = "rf_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                self.api_keys.insert().values(
                    key_hash=hash_api_key(key), name=name, scope=scope, created=int(time.time())
                )
            )
        return key

    def api_key_scopes(self) -> dict[str, str]:
        """Digest -> scope of every stored key."""
        with self.engine.connect() as conn:
            q = sa.select(self.api_keys.c.key_hash, self.api_keys.c.scope)
            return {h: s for h, s in conn.execute(q)}

    def revoke_api_key(self, name: str) -> int:
        """Delete the keys with this name; returns how many were deleted."""
        with self.engine.begin() as conn:
            res = conn.execute(self.api_keys.delete().where(self.api_keys.c.name == name))
            return int(res.rowcount or 0)


def _row_event(r: Any) -> Event:
    return Event(
        event_id=r[1],
        user=r[2],
        item=r[3],
        type=r[4],
        value=float(r[5]),
        timestamp=int(r[6]),
        seq=int(r[0]),
        txid=int(r[7]),
    )
