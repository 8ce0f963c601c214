"""Structural rules of the code base: the model contract is the only door into a model."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

import recforge
from recforge.models import MODELS, model_class
from recforge.models.base import Recommender
from recforge.testing import RecommenderContract

SRC = Path(recforge.__file__).parent
TESTS = Path(__file__).parent

#: public learned attributes a model keeps behind its contract
_LEARNED_INTERNALS = {"seen_", "item_popularity_", "item_factors_", "item_features_"}


def _recommender_members() -> set[str]:
    """Private attribute names defined on any model class."""
    names: set[str] = set()
    for path in MODELS.values():
        for cls in inspect.getmro(model_class(path)):
            if issubclass(cls, Recommender) or cls.__module__.startswith("recforge.models"):
                names.update(n for n in vars(cls) if n.startswith("_") and not n.startswith("__"))
    return names


def _outside_models() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if "models" not in p.relative_to(SRC).parts]


def test_no_module_outside_models_uses_a_private_member_of_a_model() -> None:
    private = _recommender_members()
    offences = []
    for path in _outside_models():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if node.attr in private or node.attr in _LEARNED_INTERNALS:
                offences.append(f"{path.relative_to(SRC)}:{node.lineno}: .{node.attr}")
    assert offences == [], "code outside recforge.models reaches into models:\n" + "\n".join(
        offences
    )


def test_no_capability_is_guessed_from_attribute_names() -> None:
    offences = []
    for path in _outside_models():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and not (isinstance(node.args[0], ast.Name) and node.args[0].id == "self")
                and not node.args[1].value.startswith("__")
                and (
                    node.args[1].value.endswith("_")
                    or node.args[1].value in {"add_items", "fold_in", "item_vectors"}
                )
            ):
                offences.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offences == []


def _contract_classes(monkeypatch: pytest.MonkeyPatch) -> set[type[Recommender]]:
    monkeypatch.syspath_prepend(str(TESTS / "models"))  # the test modules import each other
    covered: set[type[Recommender]] = set()
    for path in sorted((TESTS / "models").glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"_contract_scan_{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)  # as an import would
        spec.loader.exec_module(module)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, RecommenderContract)
                and obj is not RecommenderContract
            ):
                covered.add(obj.model)
    return covered


def test_every_registered_model_has_a_contract_test(monkeypatch: pytest.MonkeyPatch) -> None:
    covered = _contract_classes(monkeypatch)
    missing = sorted(name for name, path in MODELS.items() if model_class(path) not in covered)
    assert missing == [], f"models without a RecommenderContract test class: {missing}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_capabilities_are_declared_flags(name: str) -> None:
    cls = model_class(name)
    for flag in (
        "supports_predict",
        "supports_similar_items",
        "supports_history",
        "supports_explain",
        "supports_item_vectors",
        "supports_new_items",
        "supports_epochs",
    ):
        assert isinstance(getattr(cls, flag), bool), flag
