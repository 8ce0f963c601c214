"""Approximate retrieval: index settings, recall against exact search, exact rules after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.data.synthetic import synthetic_data
from recforge.exceptions import ConfigError, ModelFormatError, UnsupportedCapabilityError
from recforge.models import Recommender, model_class
from recforge.retrieval import Exclusions, IndexSpec, build_index, index_from_array, retrieve_top_k

faiss = pytest.importorskip("faiss", reason="faiss-cpu (the 'ann' extra) is not installed")


def _vectors(n: int, d: int, seed: int) -> np.ndarray:
    """Rows around 20 taste directions with norms spread over a decade, like trained factors."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(20, d))
    x = centres[rng.integers(0, 20, n)] + 0.6 * rng.normal(size=(n, d))
    return (x * rng.uniform(0.3, 3.0, size=(n, 1))).astype(np.float32)


def _exact_top(q: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(q @ keys.T), axis=1, kind="stable")[:, :k]


@pytest.fixture(autouse=True)
def _one_faiss_thread() -> Iterator[None]:
    """HNSW construction is deterministic on one thread: recall figures do not vary by run."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def implicit_data() -> Dataset:
    return synthetic_data(400, 2500, 25_000, rng=3).dataset


def test_spec_validates_and_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="index kind"):
        IndexSpec(kind="annoy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'ef_search'"):
        IndexSpec(ef_search=0)
    with pytest.raises(ConfigError, match="unknown index setting 'efsearch'"):
        IndexSpec.coerce("hnsw", efsearch=10)
    spec = IndexSpec.coerce({"kind": "ivf", "nprobe": 8}, min_items=0)
    assert IndexSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_native_inner_product_recall_on_varying_norms(kind: str) -> None:
    keys, queries = _vectors(5000, 32, 0), _vectors(200, 32, 1)
    index = build_index(IndexSpec(kind=kind, ef_search=128, nprobe=24), keys)  # type: ignore[arg-type]
    found = index.search(queries, 10)
    truth = _exact_top(queries, keys, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.9
    restored = index_from_array(index.spec, index.to_array(), 32)
    np.testing.assert_array_equal(restored.search(queries, 10), found)


def test_exact_candidates_give_the_exact_list_with_its_ties() -> None:
    keys = np.repeat(_vectors(100, 8, 2), 2, axis=0)  # every score appears twice
    queries = _vectors(7, 8, 3)
    index = build_index(IndexSpec(kind="exact", oversample=8), keys)
    offsets = np.linspace(-1, 1, 7).astype(np.float32)
    idx, val = retrieve_top_k(
        index, queries, keys, offsets, 6, Exclusions.none(7), None, _no_fallback
    )
    scores = queries @ keys.T + offsets[:, None]
    want = np.argsort(-scores, axis=1, kind="stable")[:, :6]  # ties: lower code first
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(val, np.take_along_axis(scores, want, axis=1), rtol=1e-5)


def _no_fallback(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raise AssertionError(f"rows {pos} should not need exact scoring")


def test_filters_and_exclusions_are_exact_and_lists_stay_full() -> None:
    keys, queries = _vectors(4000, 16, 4), _vectors(30, 16, 5)
    index = build_index(IndexSpec(kind="hnsw"), keys)
    allowed = np.zeros(4000, dtype=bool)
    allowed[::97] = True  # 42 items pass: far fewer than the first round of candidates
    top = _exact_top(queries, keys, 200)
    excl = Exclusions.per_row([row[:150] for row in top])  # each row's 150 best are seen
    calls: list[int] = []

    def fallback(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(pos.size)
        scores = queries[pos] @ keys.T
        scores[:, ~allowed] = -np.inf
        for r, p in enumerate(pos):
            scores[r, top[p][:150]] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        return order.astype(np.int32), np.take_along_axis(scores, order, axis=1)

    idx, _ = retrieve_top_k(
        index, queries, keys, np.zeros(30, np.float32), 10, excl, allowed, fallback
    )
    assert (idx >= 0).all()  # ten items pass the filter for every row: lists are full
    assert allowed[idx].all()
    for r in range(30):
        assert not set(idx[r].tolist()) & set(top[r][:150].tolist())
    wanted = fallback(np.arange(30))[0]
    calls.clear()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, wanted, strict=True)])
    assert recall >= 0.9


def test_too_few_eligible_items_fall_back_to_exact_scoring() -> None:
    keys, queries = _vectors(300, 8, 6), _vectors(3, 8, 7)
    index = build_index(IndexSpec(kind="hnsw"), keys)
    allowed = np.zeros(300, dtype=bool)
    allowed[:4] = True
    used: list[np.ndarray] = []

    def fallback(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        used.append(pos)
        s = queries[pos] @ keys.T
        s[:, ~allowed] = -np.inf
        o = np.argsort(-s, axis=1, kind="stable")[:, :10]
        v = np.take_along_axis(s, o, axis=1)
        return np.where(np.isfinite(v), o, -1).astype(np.int32), v.astype(np.float32)

    idx, _ = retrieve_top_k(
        index, queries, keys, np.zeros(3, np.float32), 10, Exclusions.none(3), allowed, fallback
    )
    assert used
    assert (idx[:, :4] >= 0).all()
    assert (idx[:, 4:] == -1).all()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("als", {"factors": 16, "iterations": 4, "rng": 0}),
        ("bpr", {"factors": 16, "epochs": 4, "rng": 0}),
        ("svd", {"factors": 16, "epochs": 4, "rng": 0}),
    ],
)
def test_model_recommendations_through_hnsw(
    name: str, params: dict[str, int], implicit_data: Dataset, tmp_path: Path
) -> None:
    data = implicit_data
    if model_class(name).explicit:
        data = synthetic_data(400, 2500, 25_000, rng=3, implicit=False).dataset
    m = model_class(name)(**params).fit(data)
    users = m.users_.ids[:150]
    exact = m.recommend(users, k=10, exact=True)
    m.build_index("hnsw", min_items=0, ef_search=128)
    approx = m.recommend(users, k=10)
    recall = np.mean(
        [len(set(a) & set(b)) / 10 for a, b in zip(approx.items, exact.items, strict=True)]
    )
    assert recall >= 0.95
    seen = m.seen_matrix()
    for row, code in enumerate(m.users_.codes(users)):
        assert not set(approx.item_codes[row].tolist()) & set(seen[[code]].indices.tolist())
    odd = m.recommend(users[:20], k=10, filter=lambda ids: ids % 2 == 1)
    assert (odd.lengths == 10).all()
    assert (odd.items % 2 == 1).all()
    assert m.recommend(users[:5], k=10, exact=True).items.tolist() == exact.items[:5].tolist()
    loaded = Recommender.load(m.save(tmp_path / name))
    assert loaded.index_spec == m.index_spec
    np.testing.assert_array_equal(loaded.recommend(users, k=10).items, approx.items)
    hist = m.items_.ids[:6]
    by_index = m.recommend_for_history(hist, k=10)
    assert not set(by_index.items[0].tolist()) & set(hist.tolist())
    sim = m.similar_items(m.items_.ids[:20], k=5)
    exact_sim = m.similar_items(m.items_.ids[:20], k=5, exact=True)
    overlap = np.mean(
        [len(set(a) & set(b)) / 5 for a, b in zip(sim.items, exact_sim.items, strict=True)]
    )
    assert overlap >= 0.9


def test_index_below_min_items_scores_exactly(implicit_data: Dataset) -> None:
    m = model_class("als")(factors=8, iterations=2).fit(implicit_data)
    m.build_index("hnsw")  # default min_items is far above 2,500 items
    users = m.users_.ids[:40]
    np.testing.assert_array_equal(
        m.recommend(users, k=10).item_codes, m.recommend(users, k=10, exact=True).item_codes
    )
    assert m.index_spec is not None
    assert m.index_spec.kind == "hnsw"
    m.fit(implicit_data)
    assert m.index_spec is None  # a refit drops the index built on old factors


def test_models_without_vectors_refuse(implicit_data: Dataset) -> None:
    m = model_class("ease")().fit(implicit_data)
    with pytest.raises(UnsupportedCapabilityError, match="build_index"):
        m.build_index("hnsw")


def test_added_items_enter_the_index() -> None:
    rng = np.random.default_rng(0)
    n_items = 300
    frame = pd.DataFrame(
        {"user": rng.integers(0, 80, 4000), "item": rng.integers(0, n_items, 4000)}
    ).drop_duplicates()
    genres = pd.DataFrame(
        {"genre": [f"g{i % 7}" for i in range(n_items)]},
        index=pd.Index(range(n_items), name="item"),
    )
    ds = Dataset.from_frame(frame, item_attributes=genres)
    m = model_class("hybridmf")(
        factors=8, epochs=3, features=[{"kind": "categories", "column": "genre"}], n_threads=1
    ).fit(ds)
    m.build_index("hnsw", min_items=0)
    m.add_items(pd.DataFrame({"genre": ["g1", "g2"]}, index=[9001, 9002]))
    recs = m.recommend(m.users_.ids[:3], k=m.n_items, exclude_seen=False, exact=False)
    assert {9001, 9002} <= set(recs.items[0, : recs.lengths[0]].tolist())


def test_corrupt_index_is_refused(implicit_data: Dataset, tmp_path: Path) -> None:
    m = model_class("als")(factors=8, iterations=2).fit(implicit_data).build_index("hnsw")
    path = m.save(tmp_path / "m")
    doc = json.loads((path / "model.json").read_text())
    doc["index"]["spec"]["kind"] = "exact"  # the bytes are a faiss index, not raw vectors
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="retrieval index"):
        Recommender.load(path)


def test_sequential_model_item_embeddings_feed_the_index() -> None:
    pytest.importorskip("torch")
    from recforge.testing._contract import toy_dataset

    m = model_class("sasrec")(epochs=2, embedding_size=16, max_length=20, rng=0, threads=1)
    m.fit(toy_dataset())
    users = m.users_.ids[:10]
    exact = m.recommend(users, k=5, exact=True)
    m.build_index("hnsw", min_items=0)
    approx = m.recommend(users, k=5)
    np.testing.assert_allclose(approx.scores, exact.scores, atol=1e-4)
    session = m.items_.ids[:4]
    np.testing.assert_array_equal(
        m.recommend_for_history(session, k=5).items,
        m.recommend_for_history(session, k=5, exact=True).items,
    )
