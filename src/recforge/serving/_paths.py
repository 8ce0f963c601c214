"""The ``id`` path converter of the routes, registered by ``create_app``."""

from __future__ import annotations

from starlette.convertors import CONVERTOR_TYPES, Convertor, register_url_convertor

__all__ = ["IdConvertor", "register_id_convertor"]


class IdConvertor(Convertor[str]):
    """Path segment of an external id: any characters, ``/`` and newlines included.

    Ids are validated by the routes' ``IdPath`` (422 with the reason), so the route must match
    first: Starlette's ``str`` converter stops at ``/`` and ``path`` at a newline, which made
    such ids 404 although events with them are accepted.
    """

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def register_id_convertor() -> None:
    """Make ``{name:id}`` usable in route paths (Starlette keeps converters by name).

    Called by :func:`recforge.serving.app.create_app` before it imports the route modules,
    whose paths use the converter; registering again is a no-op.
    """
    if not isinstance(CONVERTOR_TYPES.get("id"), IdConvertor):
        register_url_convertor("id", IdConvertor())
