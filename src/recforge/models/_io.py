"""Safe on-disk model format: ``model.json`` + ``arrays.npz`` in a directory or a zip file.

Nothing is ever unpickled: arrays are read with ``allow_pickle=False``, the model class is
looked up in recforge's own model registry (never imported from a name in the file), and the
format version is checked before anything else is trusted.

Memory-mapped arrays
--------------------
``arrays.npz`` is compressed, so it cannot be memory-mapped. ``load_model(path, mapped=True)``
extracts a model's arrays once into uncompressed ``.npy`` files in a cache directory named
by the SHA-256 of ``arrays.npz`` (``<model dir>/.arrays-<digest>/``, or
``.<name>.arrays-<digest>/`` beside a zip file) and maps them read-only
(``np.load(mmap_mode="r")``). The cache is written under a file lock into a temporary
directory, fsynced and renamed into place, so it is either complete or absent; the digest is
checked when the cache is made (against the registry's ``CHECKSUMS.json`` when given), not at
every load. Processes that map the same cache share one copy of the arrays in the page
cache. The on-disk format is unchanged (the cache is derived and may be deleted), and
nothing is unpickled: ``.npy`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recforge._io import (
    atomic_open,
    check_state_shape,
    csr_from_state,
    csr_state,
    fsync_dir,
    fsync_file,
    jsonable,
)
from recforge.data import IdIndex
from recforge.exceptions import ConfigError, ModelFormatError
from recforge.models import _retrieval

if TYPE_CHECKING:
    from recforge.models.base import Recommender

MODEL_JSON = "model.json"
ARRAYS_NPZ = "arrays.npz"
MAPPED_MANIFEST = "manifest.json"
_MAPPED_PREFIX = ".arrays-"
log = logging.getLogger("recforge.models")
_BASE_PREFIX = "base."
_MAX_JSON_BYTES = 16 * 1024 * 1024


def _library_version() -> str:
    from recforge import __version__

    return __version__


def model_arrays(model: Recommender) -> dict[str, np.ndarray]:
    """All arrays of a fitted model: base state (ids, seen matrix) plus the subclass state."""
    seen = model.seen_
    arrays = {
        f"{_BASE_PREFIX}user_ids": model.users_.to_array(),
        f"{_BASE_PREFIX}item_ids": model.items_.to_array(),
        **csr_state(f"{_BASE_PREFIX}seen", seen),
        f"{_BASE_PREFIX}item_popularity": np.asarray(model.item_popularity_, dtype=np.float32),
    }
    for key, arr in model._get_state().items():
        arrays[key] = np.asarray(arr)
    retrieval = model.__dict__.get("retrieval_")
    if retrieval is not None:
        arrays.update(_retrieval.state_arrays(retrieval))
    for key, arr in arrays.items():
        if arr.dtype == object:
            raise ModelFormatError(f"model array {key!r} has dtype object, which needs pickle")
    return arrays


def save_model(model: Recommender, path: Path, metadata: Mapping[str, Any]) -> Path:
    """Write ``model`` atomically to ``path`` (directory, or zip when it ends in ``.zip``)."""
    from recforge.models import model_key

    doc = {
        "format_version": _format_version(),
        "model": model_key(type(model)),
        "params": jsonable(model.get_params()),
        "meta": jsonable(model._get_meta()),
        "library_version": _library_version(),
        "n_users": len(model.users_),
        "n_items": len(model.items_),
        "metadata": jsonable(dict(metadata)),
    }
    retrieval = model.__dict__.get("retrieval_")
    if retrieval is not None:
        doc["index"] = jsonable(_retrieval.state_doc(retrieval))
    buf = io.BytesIO()
    np.savez_compressed(buf, **model_arrays(model))  # type: ignore[arg-type]
    payload = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zip":
        with atomic_open(path, suffix=".zip") as fh, zipfile.ZipFile(fh, "w") as zf:
            zf.writestr(MODEL_JSON, payload)
            zf.writestr(ARRAYS_NPZ, buf.getvalue())
        return path
    tmpdir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{path.name}-"))
    (tmpdir / ARRAYS_NPZ).write_bytes(buf.getvalue())
    (tmpdir / MODEL_JSON).write_bytes(payload)
    for f in (ARRAYS_NPZ, MODEL_JSON):
        fsync_file(tmpdir / f)
    fsync_dir(tmpdir)
    if path.exists():
        old = path.with_name(f".old-{path.name}-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmpdir, path)
        _rmtree(old)
    else:
        os.replace(tmpdir, path)
    fsync_dir(path.parent)
    return path


def _format_version() -> int:
    from recforge.models.base import FORMAT_VERSION

    return FORMAT_VERSION


def _rmtree(p: Path) -> None:
    import shutil

    shutil.rmtree(p, ignore_errors=True)


def _read_raw(path: Path, *, npz: bool = True) -> tuple[bytes, bytes | None]:
    """``model.json`` and (when ``npz``) ``arrays.npz`` of a directory or zip model."""
    try:
        if path.is_file():
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                if MODEL_JSON not in names or ARRAYS_NPZ not in names:
                    raise ModelFormatError(f"{path}: not a recforge model (missing {MODEL_JSON})")
                if zf.getinfo(MODEL_JSON).file_size > _MAX_JSON_BYTES:
                    raise ModelFormatError(f"{path}: {MODEL_JSON} is too large")
                return zf.read(MODEL_JSON), zf.read(ARRAYS_NPZ) if npz else None
        if path.is_dir():
            jp, ap = path / MODEL_JSON, path / ARRAYS_NPZ
            if not jp.is_file() or not ap.is_file():
                raise ModelFormatError(f"{path}: not a recforge model (missing {MODEL_JSON})")
            if jp.stat().st_size > _MAX_JSON_BYTES:
                raise ModelFormatError(f"{path}: {MODEL_JSON} is too large")
            return jp.read_bytes(), ap.read_bytes() if npz else None
        raise ModelFormatError(f"{path}: no such model file or directory")
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFormatError(f"{path}: unreadable model archive ({exc})") from exc


def _parse_doc(path: Path, raw_json: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: {MODEL_JSON} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ModelFormatError(f"{path}: {MODEL_JSON} must hold an object")
    version = doc.get("format_version")
    if version != _format_version():
        raise ModelFormatError(
            f"{path}: unsupported model format version {version!r} "
            f"(this recforge reads version {_format_version()})"
        )
    for key in ("model", "params"):
        if key not in doc:
            raise ModelFormatError(f"{path}: {MODEL_JSON} is missing {key!r}")
    return doc


def _npz_arrays(path: Path, raw_npz: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(raw_npz), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as exc:
        raise ModelFormatError(f"{path}: arrays need pickle to load, refused ({exc})") from exc
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ModelFormatError(f"{path}: {ARRAYS_NPZ} is corrupted ({exc})") from exc


def read_model_files(
    path: Path, *, mapped: bool = False, arrays_digest: str | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and validate the JSON document and arrays of a saved model (no class lookup).

    Parameters
    ----------
    path
        Model directory or zip file.
    mapped
        Return read-only memory-mapped arrays from the uncompressed cache (made on first
        use, see the module notes) instead of arrays decompressed into memory.
    arrays_digest
        Expected SHA-256 of ``arrays.npz`` (the registry's checksum). With ``mapped``, a
        cache made for this digest is used without reading ``arrays.npz`` again.

    Raises
    ------
    ModelFormatError
        Unreadable, malformed or unsafe files, or ``arrays.npz`` not matching
        ``arrays_digest``.
    """
    need_npz = not mapped or arrays_digest is None or _cached(path, arrays_digest) is None
    raw_json, raw_npz = _read_raw(path, npz=need_npz)
    doc = _parse_doc(path, raw_json)
    if raw_npz is not None and arrays_digest is not None:
        _check_digest(path, raw_npz, arrays_digest)
    if mapped:
        return doc, mapped_arrays(path, raw_npz, arrays_digest)
    return doc, _npz_arrays(path, raw_npz or b"")


def _check_digest(path: Path, raw_npz: bytes, digest: str) -> None:
    if hashlib.sha256(raw_npz).hexdigest() != digest:
        raise ModelFormatError(
            f"{path}: {ARRAYS_NPZ} does not match its checksum (truncated or modified)"
        )


# --------------------------------------------------------------------------- mapped arrays
def mapped_cache_dir(path: Path, digest: str) -> Path:
    """Directory of the uncompressed arrays of the model at ``path`` whose ``arrays.npz``
    has SHA-256 ``digest`` (inside a model directory, beside a zip file)."""
    if path.is_dir():
        return path / f"{_MAPPED_PREFIX}{digest}"
    return path.with_name(f".{path.name}{_MAPPED_PREFIX}{digest}")


def _cached(path: Path, digest: str) -> Path | None:
    cache = mapped_cache_dir(path, digest)
    return cache if (cache / MAPPED_MANIFEST).is_file() else None


def mapped_arrays(
    path: Path, raw_npz: bytes | None, digest: str | None = None
) -> dict[str, np.ndarray]:
    """The model's arrays, memory-mapped read-only from its uncompressed cache.

    The cache is made when missing (under a lock, so concurrent loaders extract once). When
    the cache directory cannot be written (a read-only registry), the arrays are returned
    decompressed into memory instead, with a warning.

    Parameters
    ----------
    path
        Model directory or zip file.
    raw_npz
        Content of ``arrays.npz`` (may be ``None`` only when the cache for ``digest`` exists).
    digest
        SHA-256 of ``raw_npz`` when already known and checked.

    Raises
    ------
    ModelFormatError
        Malformed or unsafe arrays, or a cache that does not match its manifest.
    """
    if digest is None:
        if raw_npz is None:
            raise ModelFormatError(f"{path}: {ARRAYS_NPZ} is needed to map the arrays")
        digest = hashlib.sha256(raw_npz).hexdigest()
    cache = mapped_cache_dir(path, digest)
    if not (cache / MAPPED_MANIFEST).is_file():
        if raw_npz is None:  # the cache vanished since the caller looked
            raw_npz = _read_raw(path)[1] or b""
            _check_digest(path, raw_npz, digest)
        arrays = _npz_arrays(path, raw_npz)
        try:
            _write_cache(cache, digest, arrays, len(raw_npz))
        except OSError as exc:
            log.warning("%s: arrays not memory-mapped, cache not writable (%s)", path, exc)
            return arrays
    return _map_cache(cache, path / ARRAYS_NPZ if path.is_dir() else None)


@contextlib.contextmanager
def _file_lock(path: Path) -> Any:
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_cache(
    cache: Path, digest: str, arrays: Mapping[str, np.ndarray], npz_bytes: int
) -> None:
    """Write ``arrays`` as ``.npy`` files into ``cache`` atomically (once, under a lock)."""
    with _file_lock(cache.with_name(cache.name + ".lock")):
        if (cache / MAPPED_MANIFEST).is_file():
            return  # made by a concurrent loader while this one waited
        tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=f".tmp{cache.name}-"))
        try:
            entries = {}
            for i, (name, arr) in enumerate(arrays.items()):
                file = f"a{i:05d}.npy"
                np.save(tmp / file, np.ascontiguousarray(arr), allow_pickle=False)
                fsync_file(tmp / file)
                entries[name] = {"file": file, "dtype": arr.dtype.str, "shape": list(arr.shape)}
            manifest = {"arrays_sha256": digest, "npz_bytes": npz_bytes, "arrays": entries}
            (tmp / MAPPED_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            fsync_file(tmp / MAPPED_MANIFEST)
            fsync_dir(tmp)
            os.replace(tmp, cache)
        except BaseException:
            _rmtree(tmp)
            raise
        fsync_dir(cache.parent)
        for old in cache.parent.glob(f"{cache.name.split(_MAPPED_PREFIX)[0]}{_MAPPED_PREFIX}*"):
            if old != cache and old.is_dir():  # caches of files since replaced
                _rmtree(old)


def _map_cache(cache: Path, npz: Path | None) -> dict[str, np.ndarray]:
    """Map every array listed in the cache's manifest read-only, checking dtype and shape.

    ``npz`` (the source ``arrays.npz`` of a directory model) must still have the size it had
    when the cache was made: a truncated or replaced file is refused as at a full check.
    """
    try:
        manifest = json.loads((cache / MAPPED_MANIFEST).read_text())
        entries = manifest["arrays"]
        if npz is not None and npz.stat().st_size != int(manifest["npz_bytes"]):
            raise ModelFormatError(
                f"{npz}: changed since its arrays were verified and extracted (truncated or "
                "modified)"
            )
        out = {}
        for name, entry in entries.items():
            file = cache / str(entry["file"])
            if np.prod(entry["shape"], dtype=np.int64) == 0:
                arr = np.load(file, allow_pickle=False)  # an empty file region cannot be mapped
                arr.setflags(write=False)
            else:
                arr = np.load(file, mmap_mode="r", allow_pickle=False)
            if arr.dtype.str != entry["dtype"] or list(arr.shape) != list(entry["shape"]):
                raise ModelFormatError(
                    f"{file}: array {name!r} has dtype {arr.dtype.str} and shape "
                    f"{list(arr.shape)}, its manifest says {entry['dtype']} {entry['shape']}"
                )
            out[str(name)] = arr
    except ModelFormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFormatError(f"{cache}: unreadable memory-mapped array cache ({exc})") from exc
    return out


def load_model(
    path: Path, *, mapped: bool = False, arrays_digest: str | None = None
) -> Recommender:
    """Load and validate a saved model.

    Parameters
    ----------
    path
        Model directory or zip file.
    mapped
        Serve the model's arrays memory-mapped read-only from the uncompressed cache (see
        the module notes): processes loading the same model share one copy of its arrays.
    arrays_digest
        Expected SHA-256 of ``arrays.npz`` (see :func:`read_model_files`).
    """
    from recforge.models import model_class

    doc, arrays = read_model_files(path, mapped=mapped, arrays_digest=arrays_digest)
    try:
        cls = model_class(str(doc["model"]))
    except KeyError as exc:
        raise ModelFormatError(f"{path}: unknown model class {doc['model']!r}") from exc
    params = doc["params"]
    if not isinstance(params, dict):
        raise ModelFormatError(f"{path}: 'params' must be an object")
    try:
        model = cls(**params)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"{path}: invalid hyperparameters ({exc})") from exc
    try:
        users = IdIndex.from_array(check_state_shape(arrays, "base.user_ids", (None,)))
        items = IdIndex.from_array(check_state_shape(arrays, "base.item_ids", (None,)))
        if "base.seen_data" not in arrays and "base.seen_indices" in arrays:
            n_seen = arrays["base.seen_indices"].size  # saved before values were kept
            arrays = {**arrays, "base.seen_data": np.ones(n_seen, dtype=np.float32)}
        seen = csr_from_state(arrays, "base.seen", (len(users), len(items)))
        pop = check_state_shape(arrays, "base.item_popularity", (None,), np.float32)
        if pop.size > len(items):
            raise ModelFormatError("item popularity is longer than the item index")
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: {exc}") from exc
    except Exception as exc:  # malformed ids etc.
        raise ModelFormatError(f"{path}: invalid model arrays ({exc})") from exc
    model.users_ = users
    model.items_ = items
    model.seen_ = seen
    model.item_popularity_ = np.concatenate(
        [pop, np.zeros(len(items) - pop.size, dtype=np.float32)]
    )  # files written before catalogue growth padded it have a shorter array
    state = {k: v for k, v in arrays.items() if not k.startswith(_BASE_PREFIX)}
    meta = doc.get("meta") or {}
    try:
        model._set_state(state, meta)
    except ModelFormatError as exc:
        del model.items_
        raise ModelFormatError(f"{path}: {exc}") from exc
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        del model.items_
        raise ModelFormatError(f"{path}: invalid model state ({exc})") from exc
    if doc.get("index") is not None:
        try:
            model.retrieval_ = _retrieval.restore(model, arrays, doc["index"])
        except (ModelFormatError, ConfigError, ValueError) as exc:
            raise ModelFormatError(f"{path}: invalid retrieval index ({exc})") from exc
    return model


def read_metadata(path: Path) -> dict[str, Any]:
    """The JSON document of a saved model (validated), without building the model."""
    doc, _ = read_model_files(path)
    return doc
