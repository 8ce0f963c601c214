"""Recommendation models. Every model follows the :class:`Recommender` contract.

Model classes are imported lazily so ``import recforge.models`` stays fast; look one up by its
short name with :func:`model_class` (``"als"``, ``"itemknn"``, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from recforge.models.base import Explanation, Param, Recommendations, Recommender

if TYPE_CHECKING:
    pass

__all__ = [
    "MODELS",
    "Explanation",
    "Param",
    "Recommendations",
    "Recommender",
    "available_models",
    "model_class",
    "model_key",
]

#: Short name -> "module:Class" of every model shipped with recforge. Loading a saved model
#: only ever instantiates a class listed here.
MODELS: dict[str, str] = {
    "random": "recforge.models.popular:Random",
    "popular": "recforge.models.popular:MostPopular",
    "bias": "recforge.models.bias:BiasedBaseline",
    "itemknn": "recforge.models.knn:ItemKNN",
    "userknn": "recforge.models.knn:UserKNN",
    "rp3beta": "recforge.models.graph:RP3beta",
    "svd": "recforge.models.mf:SVD",
    "svdpp": "recforge.models.mf:SVDpp",
    "als": "recforge.models.als:ALS",
    "bpr": "recforge.models.bpr:BPR",
    "ease": "recforge.models.linear:EASE",
    "slim": "recforge.models.linear:SLIM",
    "content": "recforge.models.content:ContentBased",
    "hybridmf": "recforge.models.hybrid:HybridMF",
    "blend": "recforge.models.hybrid:Blend",
    "sasrec": "recforge.models.sequential:SASRec",
    "multvae": "recforge.models.vae:MultVAE",
    "twotower": "recforge.models.twotower:TwoTower",
}


def _import(path: str) -> type[Recommender]:
    module, _, cls = path.partition(":")
    obj = getattr(importlib.import_module(module), cls)
    return obj  # type: ignore[no-any-return]


def available_models() -> list[str]:
    """Short names of the models whose modules are present in this installation."""
    names = []
    for name, path in MODELS.items():
        try:
            _import(path)
        except (ImportError, AttributeError):
            continue
        names.append(name)
    return names


def model_class(name: str) -> type[Recommender]:
    """Model class by short name (``"als"``) or registered ``"module:Class"`` path.

    Raises
    ------
    KeyError
        If ``name`` is not a registered recforge model.
    """
    key = name.lower() if name.lower() in MODELS else name
    path = MODELS.get(key)
    if path is None and key in MODELS.values():
        path = key
    if path is None:
        import difflib

        near = difflib.get_close_matches(name.lower(), list(MODELS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise KeyError(f"unknown model {name!r}{hint} (models: {', '.join(MODELS)})")
    try:
        return _import(path)
    except (ImportError, AttributeError) as exc:
        raise KeyError(f"model {name!r} is not available in this installation ({exc})") from exc


def model_key(cls: type[Any]) -> str:
    """Short registry name of a model class."""
    path = f"{cls.__module__}:{cls.__name__}"
    for name, p in MODELS.items():
        if p == path:
            return name
    raise KeyError(f"{cls.__name__} is not a registered recforge model")
