"""Exceptions and warnings raised by recforge.

Hierarchy::

    RecforgeError (Exception)
    ├── DataError (ValueError)              bad input data: names the source, column and row
    ├── ConfigError (ValueError)            bad hyperparameter or configuration value
    ├── NotFittedError (ValueError, AttributeError)
    ├── UnsupportedCapabilityError (NotImplementedError)
    ├── UnknownIdError (KeyError)           an id the fitted model has never seen
    ├── ModelFormatError (ValueError)       a saved model that cannot be trusted or read
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    └── ServiceError                        the service refused a client request (see below)

    RecforgeWarning (UserWarning)
    ├── DataWarning
    └── ConfigWarning
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConfigWarning",
    "DataError",
    "DataWarning",
    "InsufficientMemoryError",
    "MissingDependencyError",
    "ModelFormatError",
    "NotFittedError",
    "RecforgeError",
    "RecforgeWarning",
    "ServiceAuthError",
    "ServiceConnectionError",
    "ServiceError",
    "ServiceNotFoundError",
    "ServiceRequestError",
    "ServiceUnavailableError",
    "UnknownIdError",
    "UnsupportedCapabilityError",
]


class RecforgeError(Exception):
    """Base class of every error raised by recforge."""


class DataError(RecforgeError, ValueError):
    """Input data is malformed; the message names the source, column and first bad row."""


class ConfigError(RecforgeError, ValueError):
    """A hyperparameter or configuration value is invalid."""


class NotFittedError(RecforgeError, ValueError, AttributeError):
    """A model was used before ``fit`` was called."""


class UnsupportedCapabilityError(RecforgeError, NotImplementedError):
    """The model family does not support the requested operation."""


class UnknownIdError(RecforgeError, KeyError):
    """An external id is not known to the fitted model or index."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ModelFormatError(RecforgeError, ValueError):
    """A saved model is truncated, corrupted, of an unknown version or unsafe to load."""


class MissingDependencyError(RecforgeError, ImportError):
    """An optional dependency is missing; the message gives the install command."""


class InsufficientMemoryError(RecforgeError, MemoryError):
    """A fit would need more memory than the machine has; the message says how much and
    what to use instead."""


class RecforgeWarning(UserWarning):
    """Base class of recforge warnings."""


class DataWarning(RecforgeWarning):
    """Input data is suspicious but usable."""


class ConfigWarning(RecforgeWarning):
    """A configuration choice is likely a mistake."""


def require(module: str, extra: str) -> object:
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    module
        Importable module name, e.g. ``"optuna"``.
    extra
        The recforge extra that installs it, e.g. ``"tune"``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise MissingDependencyError(
            f"{module!r} is required for this feature but is not installed. "
            f"Install it with: pip install 'recforge[{extra}]'"
        ) from exc


class ServiceError(RecforgeError):
    """The recommendation service refused a request or could not be reached.

    Raised by :mod:`recforge.client`. Subclasses::

        ServiceError (RecforgeError)
        ├── ServiceAuthError          401 or 403: missing, unknown or insufficient API key
        ├── ServiceNotFoundError      404: unknown user, item or version
        ├── ServiceRequestError       400, 408, 413, 422: the request itself was refused
        ├── ServiceUnavailableError   503/502/504 or 429 still answered after every retry
        └── ServiceConnectionError    no answer (connection refused, timeout) after every retry

    Attributes
    ----------
    status : int or None
        HTTP status of the last answer (``None`` when there was none).
    detail : object
        The service's ``detail`` field (a message or a list of field errors).
    method, url : str
        The request that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: object = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url


class ServiceAuthError(ServiceError):
    """401 or 403: the API key is missing, unknown or lacks the route's scope."""


class ServiceNotFoundError(ServiceError):
    """404: the user, item or model version does not exist."""


class ServiceRequestError(ServiceError):
    """400, 408, 413 or 422: the service refused the request as sent."""


class ServiceUnavailableError(ServiceError):
    """The service stayed busy (503, 502, 504, 429) through every retry."""


class ServiceConnectionError(ServiceError):
    """The service could not be reached or did not answer in time, through every retry."""
