"""Safe on-disk model format: ``model.json`` + ``arrays.npz`` in a directory or a zip file.

Nothing is ever unpickled: arrays are read with ``allow_pickle=False``, the model class is
looked up in recforge's own model registry (never imported from a name in the file), and the
format version is checked before anything else is trusted.
"""

from __future__ import annotations

import io
import json
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


def read_model_files(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and validate the JSON document and arrays of a saved model (no class lookup)."""
    try:
        if path.is_file():
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                if MODEL_JSON not in names or ARRAYS_NPZ not in names:
                    raise ModelFormatError(f"{path}: not a recforge model (missing {MODEL_JSON})")
                if zf.getinfo(MODEL_JSON).file_size > _MAX_JSON_BYTES:
                    raise ModelFormatError(f"{path}: {MODEL_JSON} is too large")
                raw_json = zf.read(MODEL_JSON)
                raw_npz = zf.read(ARRAYS_NPZ)
        elif path.is_dir():
            jp, ap = path / MODEL_JSON, path / ARRAYS_NPZ
            if not jp.is_file() or not ap.is_file():
                raise ModelFormatError(f"{path}: not a recforge model (missing {MODEL_JSON})")
            if jp.stat().st_size > _MAX_JSON_BYTES:
                raise ModelFormatError(f"{path}: {MODEL_JSON} is too large")
            raw_json = jp.read_bytes()
            raw_npz = ap.read_bytes()
        else:
            raise ModelFormatError(f"{path}: no such model file or directory")
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFormatError(f"{path}: unreadable model archive ({exc})") from exc
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
    try:
        with np.load(io.BytesIO(raw_npz), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as exc:
        raise ModelFormatError(f"{path}: arrays need pickle to load, refused ({exc})") from exc
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ModelFormatError(f"{path}: {ARRAYS_NPZ} is corrupted ({exc})") from exc
    return doc, arrays


def load_model(path: Path) -> Recommender:
    """Load and validate a saved model."""
    from recforge.models import model_class

    doc, arrays = read_model_files(path)
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
