"""Re-ranking guarantees: filters, required categories, MMR and calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from test_content import GENRES, toy_with_attributes

from recforge.data import Dataset, IdIndex
from recforge.exceptions import ConfigError, DataError
from recforge.models.content import ContentBased
from recforge.models.popular import MostPopular
from recforge.models.rerank import (
    AttributeFilter,
    Boost,
    BusinessRules,
    Reranker,
    calibrate,
    category_matrix,
    mmr,
    rules_from_dict,
)

CATS = ["A", "B", "C", "D"]


def _catalog(n_items: int, seed: int) -> tuple[pd.DataFrame, IdIndex]:
    rng = np.random.default_rng(seed)
    genres = []
    for _ in range(n_items):
        k = int(rng.integers(0, 3))
        genres.append("|".join(sorted(set(rng.choice(CATS, k).tolist()))))
    years = rng.integers(1980, 2020, n_items).astype(float)
    years[rng.random(n_items) < 0.1] = np.nan
    ids = np.arange(1000, 1000 + n_items)
    attrs = pd.DataFrame({"genres": genres, "year": years}, index=ids)
    return attrs, IdIndex(ids)


def _candidates(n_users: int, n_items: int, big_k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.permutation(n_items)[:big_k] for _ in range(n_users)]).astype(np.int32)
    scores = -np.sort(-rng.random((n_users, big_k)), axis=1).astype(np.float32)
    pad = rng.random((n_users, big_k)) < 0.1
    idx[pad] = -1
    scores[pad] = -np.inf
    return idx, scores


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    exclude=st.lists(st.sampled_from(CATS), max_size=2, unique=True),
    require=st.lists(st.sampled_from(CATS), max_size=2, unique=True),
    min_year=st.one_of(st.none(), st.integers(1985, 2015)),
    mode=st.sampled_from(["none", "mmr", "calibration"]),
    boost=st.booleans(),
)
def test_rules_never_let_excluded_items_through(
    seed: int,
    exclude: list[str],
    require: list[str],
    min_year: int | None,
    mode: str,
    boost: bool,
) -> None:
    n_items = 40
    attrs, items = _catalog(n_items, seed)
    filters = [AttributeFilter("year", ">=", min_year)] if min_year is not None else []
    boosts = [Boost(multiply=5.0, add=1.0, category="A")] if boost else []
    rules = BusinessRules(
        exclude_categories=exclude, require_categories=require, filters=filters, boosts=boosts
    )
    r = Reranker(
        attributes=attrs,
        rules=rules,
        diversity=0.5 if mode == "mmr" else None,
        calibration=0.5 if mode == "calibration" else None,
    )
    idx, scores = _candidates(5, n_items, 25, seed)
    history = sp.csr_array(np.random.default_rng(seed).random((5, n_items)) < 0.2, dtype=np.float32)
    codes, vals = r.rerank_candidates(idx, scores, items, 8, history)
    labels = [set(g.split("|")) - {""} for g in attrs["genres"]]
    for row in range(codes.shape[0]):
        got = codes[row][codes[row] >= 0]
        assert len(set(got.tolist())) == got.size
        assert set(got.tolist()) <= set(idx[row][idx[row] >= 0].tolist())
        for c in got:
            assert not labels[c] & set(exclude)
            if require:
                assert labels[c] & set(require)
            if min_year is not None:
                assert attrs["year"].iloc[c] >= min_year
        assert np.all(np.isnan(vals[row][codes[row] < 0]))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 12))
def test_mmr_lambda_one_keeps_order(seed: int, k: int) -> None:
    idx, scores = _candidates(4, 30, 15, seed)
    # the model's order: valid candidates first, by decreasing score
    order = np.argsort(-np.where(idx >= 0, scores, -np.inf), axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    vecs = np.random.default_rng(seed).random((30, 5))
    codes, vals = mmr(idx, scores, vecs, k, lambda_=1.0)
    kk = min(k, 15)
    np.testing.assert_array_equal(codes, idx[:, :kk])
    np.testing.assert_array_equal(np.isnan(vals), idx[:, :kk] < 0)


def test_mmr_by_hand_prefers_dissimilar_item() -> None:
    # items 0 and 1 identical, item 2 orthogonal; scores 1.0, 0.9, 0.5
    vecs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    idx = np.array([[0, 1, 2]], dtype=np.int32)
    scores = np.array([[1.0, 0.9, 0.5]], dtype=np.float32)
    # rel = [1, 0.8, 0]; step 2 with λ=0.5: item1 0.5*0.8 - 0.5*1 = -0.1, item2 0 - 0 = 0
    codes, vals = mmr(idx, scores, vecs, 3, lambda_=0.5)
    assert codes.tolist() == [[0, 2, 1]]
    np.testing.assert_allclose(vals, [[1.0, 0.5, 0.9]])
    codes, _ = mmr(idx, scores, vecs, 3, lambda_=0.7)  # 0.7*0.8 - 0.3 = 0.26 > 0
    assert codes.tolist() == [[0, 1, 2]]
    sparse_codes, _ = mmr(idx, scores, sp.csr_array(vecs), 3, lambda_=0.5)
    assert sparse_codes.tolist() == [[0, 2, 1]]


def test_calibration_by_hand_matches_user_mix() -> None:
    # user history: half A, half B; candidates: three A items ranked above one B item
    cats = sp.csr_array(np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32))
    idx = np.array([[0, 1, 2, 3]], dtype=np.int32)
    scores = np.array([[1.0, 0.9, 0.8, 0.7]], dtype=np.float32)
    target = np.array([[0.5, 0.5]])
    plain, _ = calibrate(idx, scores, cats, target, 2, lambda_=0.0)
    assert plain.tolist() == [[0, 1]]
    cal, _ = calibrate(idx, scores, cats, target, 2, lambda_=0.9)
    assert cal.tolist() == [[0, 3]]


def test_calibration_lowers_kl_on_toy() -> None:
    ds = toy_with_attributes()
    model = ContentBased(features=GENRES).fit(ds)
    attrs = ds.item_attributes
    assert attrs is not None
    users = ds.users.ids[:20]
    base = Reranker(attributes=attrs).rerank(model, users, k=10)
    cal = Reranker(attributes=attrs, calibration=0.99).rerank(model, users, k=10)
    cats, _ = category_matrix(attrs, model.items_, "genres")
    cats = sp.csr_array(cats[:, [0, 1]])  # the A/B split

    def kl(recs: object) -> float:
        out = []
        seen = model.seen_
        for row, u in enumerate(users):
            code = int(ds.users.codes([u])[0])
            p = np.asarray(cats[seen[[code]].indices].sum(axis=0)).ravel() + 1e-3
            got = recs.item_codes[row][recs.item_codes[row] >= 0]  # type: ignore[attr-defined]
            q = np.asarray(cats[got].sum(axis=0)).ravel() + 1e-3
            p, q = p / p.sum(), q / q.sum()
            out.append(float(np.sum(p * np.log(p / q))))
        return float(np.mean(out))

    assert kl(cal) < kl(base)


def test_boosts_change_order() -> None:
    attrs = pd.DataFrame({"genres": ["A", "B", "B"], "year": [1990, 2005, 2010]}, index=[1, 2, 3])
    items = IdIndex([1, 2, 3])
    idx = np.array([[0, 1, 2]], dtype=np.int32)
    scores = np.array([[3.0, 2.0, 1.0]], dtype=np.float32)
    rules = BusinessRules(boosts=[Boost(multiply=2.5, when=AttributeFilter("year", ">", 2007))])
    codes, vals = Reranker(attributes=attrs, rules=rules).rerank_candidates(idx, scores, items, 3)
    assert codes.tolist() == [[0, 2, 1]]
    np.testing.assert_allclose(vals, [[3.0, 2.5, 2.0]])
    add = BusinessRules(boosts=[Boost(add=5.0, category="B")])
    codes, _ = Reranker(attributes=attrs, rules=add).rerank_candidates(idx, scores, items, 3)
    assert codes.tolist() == [[1, 2, 0]]


def test_reranker_with_model_asks_for_more_candidates() -> None:
    ds = toy_with_attributes()
    model = MostPopular().fit(ds)
    attrs = ds.item_attributes
    assert attrs is not None
    rules = BusinessRules(require_categories=["B"], filters=[AttributeFilter("genres", "!=", "")])
    recs = Reranker(attributes=attrs, rules=rules, candidates=3).rerank(model, ["u0", "u1"], k=5)
    assert recs.items.shape == (2, 5)
    assert all(i >= 120 for i in recs.items.ravel().tolist())
    seen = ds.matrix(binary=True)
    for row, u in enumerate(["u0", "u1"]):
        code = int(ds.users.codes([u])[0])
        assert not set(seen[[code]].indices.tolist()) & set(recs.item_codes[row].tolist())
    frame = recs.to_frame()
    assert len(frame) == 10
    div = Reranker(attributes=attrs, diversity=0.3).rerank(model, ["u0"], k=5)
    assert div.lengths.tolist() == [5]


def test_rerank_scores_and_recommendations_paths() -> None:
    attrs, items = _catalog(20, 1)
    rng = np.random.default_rng(0)
    scores = rng.random((3, 20)).astype(np.float32)
    rules = BusinessRules(exclude_categories=["A"])
    r = Reranker(attributes=attrs, rules=rules, candidates=2)
    codes, _ = r.rerank_scores(scores, items, 4)
    has_a = np.array(["A" in g.split("|") for g in attrs["genres"]])
    assert not has_a[codes[codes >= 0]].any()
    model_free = Reranker(item_vectors=np.eye(20), diversity=1.0)
    idx = np.argsort(-scores, axis=1)[:, :6].astype(np.int32)
    vals = np.take_along_axis(scores, idx, axis=1)
    c2, _ = model_free.rerank_candidates(idx, vals, items, 6)
    np.testing.assert_array_equal(c2, idx)


def test_category_matrix_alignment_and_errors() -> None:
    attrs = pd.DataFrame({"genres": ["A|B", "", "B"]}, index=[5, 6, 7])
    m, names = category_matrix(attrs, IdIndex([7, 99, 5]), "genres")
    assert names == ["A", "B"]
    assert m.toarray().tolist() == [[0, 1], [0, 0], [1, 1]]
    with pytest.raises(DataError, match=r"missing column 'genre' \(columns: genres\)"):
        category_matrix(attrs, IdIndex([5]), "genre")


def test_config_errors_and_rules_from_dict() -> None:
    with pytest.raises(ConfigError, match="op must be one of"):
        AttributeFilter("year", "~", 3)
    with pytest.raises(ConfigError, match="needs a category"):
        Boost(multiply=2.0)
    with pytest.raises(ConfigError, match="not both"):
        Reranker(diversity=0.5, calibration=0.5)
    with pytest.raises(ConfigError, match="needs item attributes"):
        Reranker(calibration=0.5)
    with pytest.raises(ConfigError, match="'diversity' parameter of Reranker"):
        Reranker(diversity=2.0, item_vectors=np.eye(2))
    rules = rules_from_dict(
        {
            "exclude_categories": ["Horror"],
            "filters": [{"column": "year", "op": ">=", "value": 2000}],
            "boosts": [{"multiply": 1.5, "when": {"column": "year", "op": ">", "value": 2010}}],
        }
    )
    assert rules.filters[0] == AttributeFilter("year", ">=", 2000)
    with pytest.raises(ConfigError, match="unknown business rule keys"):
        rules_from_dict({"exclude": ["x"]})
    attrs = pd.DataFrame({"year": ["old", "new"]}, index=[1, 2])
    with pytest.raises(DataError, match="cannot compare column 'year'"):
        AttributeFilter("year", ">=", 2000).mask(attrs)


def test_filter_rejects_items_without_attributes() -> None:
    frame = pd.DataFrame({"user": [1, 1, 2], "item": [10, 11, 12]})
    attrs = pd.DataFrame({"year": [2001.0]}, index=[12])
    ds = Dataset.from_frame(frame, item_attributes=attrs)
    rules = BusinessRules(filters=[AttributeFilter("year", ">=", 2000)])
    model = MostPopular().fit(ds)
    recs = Reranker(attributes=attrs, rules=rules).rerank(model, [1], k=3)
    assert recs.items[0, : recs.lengths[0]].tolist() == [12]


def test_attribute_filter_on_nullable_and_mixed_columns() -> None:
    """A nullable integer column (like the shipped movies' ``year``) used to raise ValueError."""
    frame = pd.DataFrame(
        {
            "year": pd.array([1999, None, 2005], dtype="Int64"),
            "title": pd.array(["a", None, "c"], dtype="string"),
            "mixed": ["2001", 1990, "x"],
        }
    )
    np.testing.assert_array_equal(AttributeFilter("year", ">=", 2000).mask(frame), [0, 0, 1])
    np.testing.assert_array_equal(AttributeFilter("year", "!=", 1999).mask(frame), [0, 0, 1])
    np.testing.assert_array_equal(AttributeFilter("title", "==", "c").mask(frame), [0, 0, 1])
    # numbers (numeric text included) compare with a number; other entries never match
    np.testing.assert_array_equal(AttributeFilter("mixed", ">", 1995).mask(frame), [1, 0, 0])
    np.testing.assert_array_equal(AttributeFilter("mixed", "<=", "x").mask(frame), [1, 0, 1])
    with pytest.raises(DataError, match="cannot compare column 'year'"):
        AttributeFilter("year", ">", "two thousand").mask(frame)
