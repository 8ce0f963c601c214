"""Hyperparameters declared once, as annotated class attributes.

A model declares each hyperparameter in one statement, its type annotation plus a
:func:`param` call holding the default, the constraint, the documentation and the default
search space::

    class ALS(Recommender):
        factors: int = param(default=64, low=1, doc="Number of latent factors.")

From these declarations the base class derives the constructor (and its signature), the
``params`` mapping, :meth:`~recforge.models.base.Recommender.param_names`, ``get_params`` /
``set_params`` / ``clone``, the ``Parameters`` section of the class docstring, the config
loader's checks and the tuner's default search spaces. ``Recommender`` is marked with
:func:`typing.dataclass_transform`, so type checkers see the same constructor.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from recforge.exceptions import ConfigError

__all__ = ["Param", "declare_params", "param", "parameters_section"]

T = TypeVar("T")

_KINDS: dict[type, str] = {int: "an int", float: "a float", bool: "a bool", str: "a str"}
_SECTIONS = re.compile(r"^(Attributes|Notes|Examples|References|See Also|Raises)\n-{3,}$", re.M)


@dataclass(frozen=True)
class Param:
    """The declaration of one hyperparameter, checked on construction and ``set_params``.

    Built by :func:`param` and completed from the annotation when the class is created.

    Parameters
    ----------
    kind
        ``int``, ``float``, ``bool`` or ``str``; ``None`` for a structured value that
        ``convert`` checks.
    low, high
        Inclusive bounds for numbers (``None``: unbounded); ``low_open`` excludes ``low``.
    options
        Allowed values for strings.
    nullable
        Whether ``None`` is allowed (the annotation includes ``None``).
    default
        The constructor default.
    doc
        Description (the class docstring's ``Parameters`` entry).
    convert
        Check and normalisation of a structured value: returns the value to store, raises
        :class:`ValueError` (or :class:`ConfigError`) saying what is wrong.
    search
        Default search space of the tuner: ``{"low", "high", "log"}`` for numbers or
        ``{"choices": [...]}``.
    name, annotation
        The attribute name and its annotation as written.
    """

    kind: type | None = None
    low: float | None = None
    high: float | None = None
    options: tuple[Any, ...] | None = None
    nullable: bool = False
    low_open: bool = False
    default: Any = None
    doc: str = ""
    convert: Callable[[Any], Any] | None = None
    search: Mapping[str, Any] | None = None
    name: str = ""
    annotation: str = ""

    def check(self, owner: str, name: str, value: Any) -> Any:
        """The value to store for ``name``; raises :class:`ConfigError` naming it and ``owner``."""
        if value is None and self.nullable:
            return None
        if self.kind is None:
            return self._convert(owner, name, value)
        ok, value = _coerce(self.kind, value)
        if ok and self.options is not None:
            ok = value in self.options
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value <= self.high
        if not ok:
            raise ConfigError(
                f"The {name!r} parameter of {owner} must be {self.describe()}. "
                f"Got {value!r} instead."
            )
        return value

    def _convert(self, owner: str, name: str, value: Any) -> Any:
        if self.convert is None:
            return value
        try:
            return self.convert(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"The {name!r} parameter of {owner} is invalid: {exc}") from exc

    def describe(self) -> str:
        """What the parameter accepts, e.g. ``"an int in the range [1, inf)"``."""
        if self.options is not None:
            text = "one of " + ", ".join(repr(o) for o in self.options)
        elif self.kind is None:
            text = self.annotation or "a value"
        else:
            text = _KINDS[self.kind]
            if self.low is not None or self.high is not None:
                lo = "-inf" if self.low is None else f"{self.low:g}"
                hi = "inf" if self.high is None else f"{self.high:g}"
                lb = "(" if self.low is None or self.low_open else "["
                rb = ")" if self.high is None else "]"
                text = f"{text} in the range {lb}{lo}, {hi}{rb}"
        return text + (" or None" if self.nullable else "")

    def search_space(self) -> dict[str, Any] | None:
        """The default search space as the tuner takes it (``type`` added for ranges)."""
        if self.search is None:
            return None
        space = dict(self.search)
        if "choices" not in space:
            space["type"] = "int" if self.kind is int else "float"
        return space


def _coerce(kind: type, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` is of ``kind``, and the value as a plain Python scalar."""
    if kind is int:
        ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
        return ok, int(value) if ok else value
    if kind is float:
        ok = isinstance(value, int | float | np.integer | np.floating)
        ok = ok and not isinstance(value, bool) and math.isfinite(float(value))
        return ok, float(value) if ok else value
    if kind is bool:
        ok = isinstance(value, bool | np.bool_)
        return ok, bool(value) if ok else value
    return isinstance(value, kind), value


def param(
    *,
    default: T,
    doc: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    options: tuple[Any, ...] | None = None,
    convert: Callable[[Any], Any] | None = None,
    search: Mapping[str, Any] | None = None,
) -> T:
    """Declare a hyperparameter (see the module docstring); the annotation gives its type.

    Parameters
    ----------
    default
        Constructor default (validated when the class is created).
    doc
        One-paragraph description for the docstring's ``Parameters`` section.
    low, high, low_open, options
        Constraint of a number or string.
    convert
        Check of a structured value (any annotation other than int, float, bool, str).
    search
        Default tuning search space.
    """
    spec = Param(
        low=low,
        high=high,
        low_open=low_open,
        options=options,
        default=default,
        doc=doc,
        convert=convert,
        search=search,
    )
    return spec  # type: ignore[return-value]  # a placeholder the class replaces


# --------------------------------------------------------------------------- class creation
def declare_params(cls: type) -> dict[str, Param]:
    """Complete and remove the :func:`param` placeholders of ``cls``; all its parameters.

    Parameters of base classes come first, in their order; a redeclared name keeps its place
    (dataclass semantics, which type checkers apply to the constructor).

    Raises
    ------
    TypeError
        On an annotated attribute that is not a hyperparameter (type checkers would take it
        for a constructor argument), a structured type without ``convert``, or an invalid
        default.
    """
    own: dict[str, Param] = {}
    for name, annotation in inspect.get_annotations(cls).items():
        spec = cls.__dict__.get(name)
        if not isinstance(spec, Param):
            if _is_classvar(annotation):
                continue
            raise TypeError(
                f"{cls.__name__}.{name} is annotated but not declared with param(): "
                "hyperparameters are declared with param(), learned state is assigned in _fit"
            )
        own[name] = _complete(cls, name, annotation, spec)
        delattr(cls, name)
    for name, value in cls.__dict__.items():
        if isinstance(value, Param) and name not in own:
            raise TypeError(f"{cls.__name__}.{name} = param(...) needs a type annotation")
    merged: dict[str, Param] = {}
    for base in reversed(cls.__mro__[1:]):
        merged.update(base.__dict__.get("_declared_params", {}))
    merged.update(own)
    cls._declared_params = own  # type: ignore[attr-defined]
    return merged


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return typing.get_origin(annotation) is typing.ClassVar


def _resolve(cls: type, name: str, annotation: Any) -> tuple[Any, str]:
    """The annotation as a type and as written (strings resolved in the class's module)."""
    if not isinstance(annotation, str):
        return annotation, getattr(annotation, "__name__", None) or repr(annotation)
    module = sys.modules.get(cls.__module__)
    try:
        return eval(annotation, dict(vars(module)) if module else {}), annotation
    except NameError as exc:
        raise TypeError(f"{cls.__name__}.{name}: cannot resolve {annotation!r} ({exc})") from None


def _complete(cls: type, name: str, annotation: Any, spec: Param) -> Param:
    hint, text = _resolve(cls, name, annotation)
    args = typing.get_args(hint) if _is_union(hint) else (hint,)
    nullable = type(None) in args
    kinds = [a for a in args if a is not type(None)]
    kind = kinds[0] if len(kinds) == 1 and kinds[0] in _KINDS else None
    if kind is None and spec.convert is None:
        raise TypeError(f"{cls.__name__}.{name}: a {text} parameter needs param(convert=...)")
    done = dataclasses.replace(spec, kind=kind, nullable=nullable, name=name, annotation=text)
    space = done.search_space() or {}
    probes = space.get("choices") or [space[b] for b in ("low", "high") if b in space]
    for what, value in [("default", done.default)] + [("search value", v) for v in probes]:
        try:
            done.check(cls.__name__, name, int(value) if space.get("type") == "int" else value)
        except ConfigError as exc:
            raise TypeError(f"{cls.__name__}.{name}: invalid {what} ({exc})") from None
    return done


def _is_union(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def signature(params: Mapping[str, Param]) -> inspect.Signature:
    """The constructor signature ``(self, name=default, ...)`` of the declared parameters."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [inspect.Parameter("self", kind)]
        + [
            inspect.Parameter(n, kind, default=p.default, annotation=p.annotation)
            for n, p in params.items()
        ],
        return_annotation="None",
    )


def parameters_section(owner: str, doc: str | None, params: Mapping[str, Param]) -> str:
    """``doc`` with a numpydoc ``Parameters`` section of ``params`` inserted.

    The section goes before the first of Attributes, Notes, Examples, References, See Also
    or Raises, or at the end.

    Raises
    ------
    TypeError
        If ``doc`` already has a Parameters section (a parameter would be documented twice).
    """
    text = inspect.cleandoc(doc or "")
    if re.search(r"^Parameters\n-{3,}$", text, re.M):
        raise TypeError(f"{owner}: the Parameters section is generated from param(doc=...)")
    if not params:
        return text
    lines = ["Parameters", "----------"]
    for name, p in params.items():
        lines.append(f"{name} : {p.annotation}, default {p.default!r}")
        lines.extend(
            textwrap.wrap(
                " ".join(p.doc.split()), 88, initial_indent="    ", subsequent_indent="    "
            )
        )
    section = "\n".join(lines) + "\n\n"
    found = _SECTIONS.search(text)
    if found is None:
        return f"{text}\n\n{section}".rstrip() + "\n"
    return text[: found.start()] + section + text[found.start() :]
