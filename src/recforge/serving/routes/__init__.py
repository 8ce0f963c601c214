"""One ``APIRouter`` per resource.

Paths use the ``id`` converter, which :func:`recforge.serving.app.create_app` registers before
it imports these modules (see :mod:`recforge.serving._paths`).
"""
