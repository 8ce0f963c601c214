"""Versioned models on disk with an atomically switched ``active`` pointer.

Layout of a registry directory::

    registry/
      versions/v000001/model.json     model document + metadata (metrics, fingerprint, lineage)
      versions/v000001/arrays.npz     arrays, loaded with allow_pickle=False
      versions/v000001/CHECKSUMS.json SHA-256 of both files, written last (a version without
                                      it is incomplete and never loaded)
      active.json                     {"version": ..., "history": [...]} (atomic replace)
      decisions/<time>-<version>.json retrain decisions
      .lock                           advisory lock held while publishing / promoting

Every write goes to a temporary name in the same directory, is fsynced, moved into place with
:func:`os.replace` and followed by an fsync of the directory, so a crash at any point leaves
either the old or the new state, never a partial one. Loading verifies the checksums, then the
model format (see :mod:`recforge.models._io`), so truncated, corrupted, mis-shaped or
pickle-bearing versions raise :class:`~recforge.exceptions.ModelFormatError`.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recforge._io import atomic_write, fsync_dir
from recforge.exceptions import ConfigError, ModelFormatError
from recforge.models._io import ARRAYS_NPZ, MODEL_JSON, read_metadata
from recforge.models.base import Recommender

__all__ = ["ModelRegistry", "VersionInfo"]

CHECKSUMS = "CHECKSUMS.json"
ACTIVE = "active.json"
_VERSION_RE = re.compile(r"^v(\d{6,})$")
_HISTORY_LIMIT = 50
_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class VersionInfo:
    """Description of one registered model version.

    Attributes
    ----------
    version : str
        Version name, ``v000001``, ``v000002``, ... (increasing).
    path : pathlib.Path
        Directory of the saved model.
    model : str
        Registered model name (``"als"``, ``"popular"``).
    params : dict
        Hyperparameters.
    metrics : dict
        Offline metrics recorded at publication.
    data_fingerprint : str or None
        Fingerprint of the training data.
    parent : str or None
        Version this one was derived from (lineage).
    created : float
        Epoch seconds of publication.
    extra : dict
        Any other metadata given at publication.
    """

    version: str
    path: Path
    model: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    data_fingerprint: str | None
    parent: str | None
    created: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the local path)."""
        return {
            "version": self.version,
            "model": self.model,
            "params": self.params,
            "metrics": self.metrics,
            "data_fingerprint": self.data_fingerprint,
            "parent": self.parent,
            "created": self.created,
            "extra": self.extra,
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json_atomic(path: Path, doc: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(doc, indent=2, sort_keys=True, allow_nan=False))


class ModelRegistry:
    """Versioned model store with promote / rollback of an ``active`` version.

    Parameters
    ----------
    root
        Registry directory (created when missing).

    Examples
    --------
    >>> reg = ModelRegistry(tmp_path)                            # doctest: +SKIP
    >>> info = reg.publish(model, metrics={"ndcg@10": 0.31})     # doctest: +SKIP
    >>> reg.promote(info.version)                                # doctest: +SKIP
    >>> model, info = reg.load_active()                          # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.decisions_dir = self.root / "decisions"
        for d in (self.root, self.versions_dir, self.decisions_dir):
            d.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def lock(self, timeout: float = 60.0) -> Iterator[None]:
        """Exclusive advisory lock on the registry (publish / promote / rollback hold it)."""
        fh = open(self.root / ".lock", "a+b")  # noqa: SIM115 - closed in finally
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"registry {self.root} is locked by another process for more than "
                            f"{timeout:g} s"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    # ------------------------------------------------------------------ versions
    def _version_names(self) -> list[str]:
        names = [p.name for p in self.versions_dir.iterdir() if _VERSION_RE.match(p.name)]
        return sorted(names, key=lambda n: int(n[1:]))

    def _next_version(self) -> str:
        names = self._version_names()
        last = int(names[-1][1:]) if names else 0
        return f"v{last + 1:06d}"

    def publish(
        self,
        model: Recommender,
        *,
        metrics: Mapping[str, Any] | None = None,
        data_fingerprint: str | None = None,
        parent: str | None = None,
        extra: Mapping[str, Any] | None = None,
        promote: bool = False,
    ) -> VersionInfo:
        """Save a fitted model as a new version (atomically), optionally promoting it.

        Parameters
        ----------
        model
            A fitted recforge model.
        metrics
            Offline metrics to record (JSON-serialisable, finite).
        data_fingerprint
            Fingerprint of the training data (``Dataset.fingerprint()``).
        parent
            Version this one derives from; defaults to the active version.
        extra
            Other JSON-serialisable metadata (e.g. ``events_seq``, the last event included).
        promote
            Make the new version active.

        Returns
        -------
        VersionInfo
        """
        with self.lock():
            version = self._next_version()
            if parent is None:
                parent = self.active_version()
            meta = {
                "registry": {
                    "version": version,
                    "metrics": dict(metrics or {}),
                    "data_fingerprint": data_fingerprint,
                    "parent": parent,
                    "created": time.time(),
                    "extra": dict(extra or {}),
                }
            }
            tmp = self.versions_dir / f".tmp-{version}-{uuid.uuid4().hex}"
            model.save(tmp, metadata=meta)
            checksums = {
                "version": version,
                "files": {name: _sha256(tmp / name) for name in (MODEL_JSON, ARRAYS_NPZ)},
            }
            _write_json_atomic(tmp / CHECKSUMS, checksums)
            final = self.versions_dir / version
            os.replace(tmp, final)
            fsync_dir(self.versions_dir)
            if promote:
                self._set_active(version)
        return self.info(version)

    def verify(self, version: str) -> Path:
        """Check that a version is complete and its files match their checksums.

        Returns
        -------
        pathlib.Path
            Directory of the version.

        Raises
        ------
        ModelFormatError
            Missing, incomplete (no checksums), truncated or modified files.
        """
        path, files = self._checksums(version)
        for name, digest in files.items():
            fp = path / name
            if not fp.is_file():
                raise ModelFormatError(f"model version {version}: {name} is missing")
            if _sha256(fp) != digest:
                raise ModelFormatError(
                    f"model version {version}: {name} does not match its checksum "
                    "(truncated or modified)"
                )
        return path

    def _checksums(self, version: str) -> tuple[Path, dict[str, str]]:
        """Directory of a complete version and its recorded digests (files not read)."""
        if not _VERSION_RE.match(version):
            raise ModelFormatError(f"invalid version name {version!r} (expected v000001 form)")
        path = self.versions_dir / version
        sums_path = path / CHECKSUMS
        if not path.is_dir():
            raise ModelFormatError(f"model version {version} does not exist in {self.root}")
        if not sums_path.is_file():
            raise ModelFormatError(f"model version {version} is incomplete: {CHECKSUMS} missing")
        try:
            sums = json.loads(sums_path.read_text())
            files = sums["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFormatError(f"model version {version}: unreadable {CHECKSUMS}") from exc
        if not isinstance(files, dict) or set(files) != {MODEL_JSON, ARRAYS_NPZ}:
            raise ModelFormatError(f"model version {version}: {CHECKSUMS} lists the wrong files")
        if not all(isinstance(d, str) for d in files.values()):
            raise ModelFormatError(f"model version {version}: {CHECKSUMS} has invalid digests")
        return path, files

    def info(self, version: str, *, verify: bool = True) -> VersionInfo:
        """Metadata of a version, without loading the model.

        Parameters
        ----------
        version
            Version name.
        verify
            Check every file against its checksum and read the arrays' format (the cost
            grows with the model). ``False`` reads ``model.json`` only: the version must be
            complete and ``model.json`` must match its checksum, but the arrays are neither
            hashed nor decompressed (they are verified when the version is loaded or
            promoted), so listing costs the same for any model size.

        Raises
        ------
        ModelFormatError
            Missing or incomplete version, or a file that fails the checks made.
        """
        if verify:
            path = self.verify(version)
            doc = read_metadata(path)
        else:
            path, doc = self._read_document(version)
        return self._version_info(version, path, doc)

    @staticmethod
    def _version_info(version: str, path: Path, doc: Mapping[str, Any]) -> VersionInfo:
        reg = (doc.get("metadata") or {}).get("registry") or {}
        return VersionInfo(
            version=version,
            path=path,
            model=str(doc.get("model")),
            params=dict(doc.get("params") or {}),
            metrics=dict(reg.get("metrics") or {}),
            data_fingerprint=reg.get("data_fingerprint"),
            parent=reg.get("parent"),
            created=float(reg.get("created") or 0.0),
            extra=dict(reg.get("extra") or {}),
        )

    def list(self, *, verify: bool = True) -> list[VersionInfo]:
        """All complete versions, oldest first (broken ones are skipped).

        Parameters
        ----------
        verify
            As in :meth:`info`: ``False`` reads metadata only (versions whose arrays are
            damaged are listed, and refused when loaded or promoted).
        """
        out = []
        for name in self._version_names():
            try:
                out.append(self.info(name, verify=verify))
            except ModelFormatError:
                continue
        return out

    def _read_document(self, version: str) -> tuple[Path, dict[str, Any]]:
        """``model.json`` of a complete version, checked against its checksum only."""
        path, files = self._checksums(version)
        fp = path / MODEL_JSON
        try:
            if fp.stat().st_size > _MAX_DOCUMENT_BYTES:
                raise ModelFormatError(f"model version {version}: {MODEL_JSON} is too large")
            raw = fp.read_bytes()
        except OSError as exc:
            raise ModelFormatError(f"model version {version}: {MODEL_JSON} is missing") from exc
        if hashlib.sha256(raw).hexdigest() != files[MODEL_JSON]:
            raise ModelFormatError(
                f"model version {version}: {MODEL_JSON} does not match its checksum "
                "(truncated or modified)"
            )
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelFormatError(f"model version {version}: {MODEL_JSON} is not JSON") from exc
        if not isinstance(doc, dict) or "model" not in doc:
            raise ModelFormatError(f"model version {version}: {MODEL_JSON} has no 'model'")
        return path, doc

    def stamp(self, version: str) -> str:
        """A cheap fingerprint of a version's files (names, sizes, modification times).

        It changes whenever a file of the version is replaced, repaired or damaged, without
        reading any of them: the service retries a version that failed to load once its
        stamp changes.
        """
        if not _VERSION_RE.match(version):
            raise ModelFormatError(f"invalid version name {version!r} (expected v000001 form)")
        path = self.versions_dir / version
        parts = []
        for name in (CHECKSUMS, MODEL_JSON, ARRAYS_NPZ):
            try:
                st = (path / name).stat()
            except OSError:
                parts.append(f"{name}:-")
                continue
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
        return "|".join(parts)

    def load(self, version: str, *, mapped: bool = False) -> tuple[Recommender, VersionInfo]:
        """Verify and load one version.

        Parameters
        ----------
        version
            Version name.
        mapped
            Map the model's arrays read-only from an uncompressed cache inside the version
            directory (``.arrays-<sha256>/``, see :mod:`recforge.models._io`), so processes
            serving the version share one copy of them. ``arrays.npz`` is checked against
            ``CHECKSUMS.json`` when the cache is made; later loads check ``model.json``'s
            checksum and that ``arrays.npz`` is still present with its recorded size, and map
            the verified copy.

        Raises
        ------
        ModelFormatError
            When the version is incomplete, corrupted, mis-shaped or unsafe.
        """
        if not mapped:
            info = self.info(version)
            return Recommender.load(info.path), info
        from recforge.models._io import load_model

        path, doc = self._read_document(version)
        digest = self._checksums(version)[1][ARRAYS_NPZ]
        if not (path / ARRAYS_NPZ).is_file():
            raise ModelFormatError(f"model version {version}: {ARRAYS_NPZ} is missing")
        model = load_model(path, mapped=True, arrays_digest=digest)
        return model, self._version_info(version, path, doc)

    # ------------------------------------------------------------------ active pointer
    def _read_active(self) -> dict[str, Any]:
        path = self.root / ACTIVE
        if not path.is_file():
            return {"version": None, "history": []}
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"{path}: unreadable active pointer ({exc})") from exc
        if not isinstance(doc, dict) or "version" not in doc:
            raise ModelFormatError(f"{path}: active pointer has no 'version'")
        doc.setdefault("history", [])
        return doc

    def active_version(self) -> str | None:
        """Name of the active version, or ``None`` when nothing was promoted."""
        v = self._read_active()["version"]
        return str(v) if v is not None else None

    def load_active(self) -> tuple[Recommender, VersionInfo]:
        """Load the active version.

        Raises
        ------
        ConfigError
            When no version is active.
        ModelFormatError
            When the active version fails verification.
        """
        version = self.active_version()
        if version is None:
            raise ConfigError(f"registry {self.root} has no active model; promote a version")
        return self.load(version)

    def _set_active(self, version: str) -> None:
        doc = self._read_active()
        history = [h for h in doc.get("history", []) if isinstance(h, str)]
        if doc["version"] is not None and doc["version"] != version:
            history.append(doc["version"])
        _write_json_atomic(
            self.root / ACTIVE,
            {"version": version, "history": history[-_HISTORY_LIMIT:], "changed": time.time()},
        )

    def promote(self, version: str) -> VersionInfo:
        """Make ``version`` active after verifying it loads (atomic pointer switch).

        Raises
        ------
        ModelFormatError
            When the version is broken; the active pointer is left unchanged.
        """
        with self.lock():
            _, info = self.load(version)
            self._set_active(version)
        return info

    def rollback(self) -> VersionInfo:
        """Re-activate the previously active version that still loads.

        Raises
        ------
        ConfigError
            When there is no earlier active version to return to.
        """
        with self.lock():
            doc = self._read_active()
            history = [h for h in doc.get("history", []) if isinstance(h, str)]
            while history:
                candidate = history.pop()
                try:
                    _, info = self.load(candidate)
                except ModelFormatError:
                    continue
                _write_json_atomic(
                    self.root / ACTIVE,
                    {"version": candidate, "history": history, "changed": time.time()},
                )
                return info
        raise ConfigError(f"registry {self.root}: no previous active version to roll back to")

    # ------------------------------------------------------------------ decisions
    def record_decision(self, decision: Mapping[str, Any]) -> Path:
        """Write a retrain decision as JSON under ``decisions/``; returns its path."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}-{uuid.uuid4().hex[:8]}.json"
        path = self.decisions_dir / name
        _write_json_atomic(path, dict(decision))
        return path

    def decisions(self) -> builtins.list[dict[str, Any]]:
        """Recorded decisions, oldest first."""
        out = []
        for p in sorted(self.decisions_dir.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def report_path(self, version: str) -> Path | None:
        """HTML report stored beside a version (``report.html``), when present."""
        if not _VERSION_RE.match(version):
            return None
        p = self.versions_dir / version / "report.html"
        return p if p.is_file() else None
