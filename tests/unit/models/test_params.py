"""Hyperparameters are declared once (``param``) and everything else is derived from that."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from recforge.exceptions import ConfigError
from recforge.models import MODELS, model_class
from recforge.models.base import Recommender, param


class _Toy(Recommender):
    """A toy model.

    Examples
    --------
    >>> _Toy().size
    3
    """

    size: int = param(default=3, low=1, doc="How many.", search={"low": 1, "high": 9})
    mode: str = param(default="a", options=("a", "b"), doc="Which.")
    scale: float | None = param(default=None, low=0.0, low_open=True, doc="How much.")
    tags: list[str] = param(default=(), convert=lambda v: [str(t) for t in v], doc="Labels.")


class _Bigger(_Toy):
    extra: bool = param(default=False, doc="Something more.")
    size: int = param(default=5, low=2, doc="How many, at least two.")


def test_everything_derives_from_the_declaration() -> None:
    assert _Toy.param_names() == ["size", "mode", "scale", "tags"]
    assert list(inspect.signature(_Toy).parameters) == _Toy.param_names()
    m = _Toy(4, "b", tags=("x", 1))
    assert m.get_params() == {"size": 4, "mode": "b", "scale": None, "tags": ["x", "1"]}
    assert m.clone().get_params() == m.get_params()
    assert repr(_Toy()) == "_Toy(size=3, mode='a', scale=None, tags=[])"
    doc = _Toy.__doc__ or ""
    assert doc.index("Parameters") < doc.index("size : int, default 3") < doc.index("Examples")
    assert "    How many." in doc
    assert _Toy.params["size"].search_space() == {"low": 1, "high": 9, "type": "int"}


def test_a_redeclared_parameter_keeps_its_place_with_the_new_declaration() -> None:
    assert _Bigger.param_names() == ["size", "mode", "scale", "tags", "extra"]
    assert _Bigger().size == 5
    with pytest.raises(ConfigError, match="'size' parameter of _Bigger"):
        _Bigger(size=1)
    assert _Toy(size=1).size == 1


def test_bad_values_are_rejected_on_construction_and_set_params_before_any_change() -> None:
    with pytest.raises(ConfigError, match=r"'mode' parameter of _Toy must be one of 'a', 'b'"):
        _Toy(mode="c")
    with pytest.raises(ConfigError, match=r"'tags' parameter of _Toy is invalid"):
        _Toy(tags=5)
    m = _Toy(size=2)
    with pytest.raises(ConfigError, match="'scale'"):
        m.set_params(size=7, scale=0.0)
    assert m.get_params()["size"] == 2
    with pytest.raises(TypeError, match=r"_Toy\(\): .*'sise'.*parameters: size, mode"):
        _Toy(sise=2)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"__init__": lambda self, size=1: None}, "defines '__init__'"),
        ({"params": {}}, "defines 'params'"),
        ({"__annotations__": {"factors_": "int"}}, "annotated but not declared with param"),
        ({"__annotations__": {"x": "dict"}, "x": param(default={}, doc="d")}, "convert"),
        ({"__annotations__": {"x": "int"}, "x": param(default=0, low=1, doc="d")}, "default"),
        (
            {
                "__annotations__": {"x": "int"},
                "x": param(default=1, low=0, doc="d", search={"low": -1, "high": 3}),
            },
            "search value",
        ),
        ({"x": param(default=1, doc="d")}, "needs a type annotation"),
        ({"__doc__": "M.\n\nParameters\n----------\nx\n    Twice.\n"}, "Parameters section"),
    ],
)
def test_a_second_declaration_is_refused(body: dict[str, Any], message: str) -> None:
    """Constructors, params tables, stray annotations and hand-written docs cannot diverge."""
    with pytest.raises(TypeError, match=message):
        type("M", (Recommender,), {"__module__": __name__, **body})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_registered_model_declares_a_parameter_twice(name: str) -> None:
    cls = model_class(name)
    for klass in inspect.getmro(cls):
        if issubclass(klass, Recommender) and klass is not Recommender:
            init = klass.__dict__["__init__"]
            assert init.__qualname__ == f"{klass.__qualname__}.__init__"
            assert init.__doc__.startswith("Validate and store the hyperparameters")
    documented = [line.split(" : ")[0] for line in (cls.__doc__ or "").splitlines()]
    for key, spec in cls.params.items():
        assert documented.count(key) == 1, f"{key} documented {documented.count(key)} times"
        assert spec.doc, f"{name}.{key} has no doc"


def test_annotations_may_be_types_or_strings_of_the_models_module() -> None:
    body = {"__module__": __name__, "__annotations__": {"x": int | None, "y": "Any"}}
    body |= {"x": param(default=None, low=0, doc="d"), "y": param(default=1, convert=int, doc="e")}
    m = type("M", (Recommender,), body)
    assert m.params["x"].kind is int
    assert m.params["x"].nullable
    assert m(y="3").get_params() == {"x": None, "y": 3}
    with pytest.raises(TypeError, match="cannot resolve 'Unknown'"):
        type(
            "N",
            (Recommender,),
            {"__annotations__": {"z": "Unknown"}, "z": param(default=1, doc="d")},
        )
