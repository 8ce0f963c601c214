"""The contract every :class:`~recforge.models.Recommender` must satisfy.

A model's test module opts in with a few lines::

    class TestALS(RecommenderContract):
        model = ALS
        configs = [{"factors": 8, "iterations": 3}]

The harness is imported by tests only; it needs pytest.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset
from recforge.exceptions import (
    ConfigError,
    DataError,
    NotFittedError,
    UnknownIdError,
    UnsupportedCapabilityError,
)
from recforge.models.base import Explanation, Param, Recommender


def toy_dataset(
    n_users: int = 60,
    n_items: int = 40,
    density: float = 0.15,
    seed: int = 7,
    explicit: bool = True,
) -> Dataset:
    """Small random interactions with two taste clusters, string user ids and int item ids.

    Users in cluster 0 prefer the first half of the items, cluster 1 the second half, so
    every sensible model can learn something.
    """
    rng = np.random.default_rng(seed)
    users, items, values, times = [], [], [], []
    half = n_items // 2
    for u in range(n_users):
        cluster = u % 2
        n = max(3, int(rng.binomial(n_items, density)))
        pref = np.arange(half) if cluster == 0 else np.arange(half, n_items)
        other = np.setdiff1d(np.arange(n_items), pref)
        k_pref = min(len(pref), round(n * 0.8))
        chosen = np.concatenate(
            [rng.choice(pref, k_pref, replace=False), rng.choice(other, n - k_pref, replace=False)]
        )
        for j, it in enumerate(chosen):
            users.append(f"u{u}")
            items.append(int(it) + 100)
            good = it in pref
            values.append(float(rng.integers(4, 6) if good else rng.integers(1, 3)))
            times.append(1_600_000_000 + u * 1000 + j)
    frame = pd.DataFrame({"user": users, "item": items, "value": values, "time": times})
    return Dataset.from_frame(frame, value="value" if explicit else None, time="time", name="toy")


class RecommenderContract:
    """Mixin of pytest tests checking the Recommender contract for one model class."""

    model: ClassVar[type[Recommender]]
    configs: ClassVar[list[dict[str, Any]]] = [{}]
    #: scores must match this closely after save/load and refit
    atol: ClassVar[float] = 1e-5
    #: whether fitting twice with the same params must give identical scores
    deterministic: ClassVar[bool] = True
    #: a rejected value of every structured parameter (one without a scalar kind)
    invalid_params: ClassVar[dict[str, Any]] = {}
    #: parameter combinations that are each valid alone but rejected together
    invalid_combinations: ClassVar[list[dict[str, Any]]] = []

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> Dataset:
        return toy_dataset(explicit=cls.model.explicit)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data: Dataset) -> list[Recommender]:
        return [cls.model(**cfg).fit(data) for cfg in cls.configs]

    def test_default_construction(self) -> None:
        m = self.model()
        assert not m.is_fitted
        assert isinstance(m.get_params(), dict)

    def test_params_round_trip(self) -> None:
        for cfg in self.configs:
            m = self.model(**cfg)
            params = m.get_params()
            assert self.model(**params).get_params() == params
            assert m.clone().get_params() == params

    def test_unknown_param_rejected(self) -> None:
        with pytest.raises(ConfigError, match="no parameter"):
            self.model().set_params(definitely_not_a_param=1)

    def test_not_fitted(self) -> None:
        with pytest.raises(NotFittedError, match="not fitted yet"):
            self.model(**self.configs[0]).recommend(["u1"])

    def test_fit_returns_self(self, data: Dataset) -> None:
        m = self.model(**self.configs[0])
        assert m.fit(data) is m

    def test_recommend_shapes_and_seen(self, fitted: list[Recommender], data: Dataset) -> None:
        users = ["u0", "u1", "u5"]
        for m in fitted:
            recs = m.recommend(users, k=5)
            assert recs.items.shape == (3, 5)
            seen = data.matrix(binary=True)
            for row, u in enumerate(users):
                code = data.users.codes([u])[0]
                seen_items = set(data.items.ids_of(seen[[code]].indices).tolist())
                got = recs.items[row, : recs.lengths[row]].tolist()
                assert not seen_items & set(got)
                assert len(set(got)) == len(got)
                s = recs.scores[row, : recs.lengths[row]]
                assert np.all(np.diff(s) <= 1e-6)

    def test_batch_equals_single(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            batch = m.recommend(["u0", "u3"], k=4)
            single = m.recommend(["u3"], k=4)
            np.testing.assert_array_equal(batch.item_codes[1], single.item_codes[0])

    def test_candidates_and_exclusions(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            cand = [100, 101, 102, 130, 131]
            recs = m.recommend(["u2"], k=10, items=cand, exclude_seen=False)
            assert set(recs.items[0, : recs.lengths[0]].tolist()) <= set(cand)
            recs = m.recommend(["u2"], k=10, exclude=[100, 101], exclude_seen=False)
            assert not {100, 101} & set(recs.items[0].tolist())
            recs = m.recommend(["u2"], k=10, filter=lambda ids: ids % 2 == 0, exclude_seen=False)
            got = recs.items[0, : recs.lengths[0]]
            assert np.all(got % 2 == 0)

    def test_unknown_user(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            with pytest.raises(UnknownIdError, match="unknown user"):
                m.recommend(["nobody"])
            recs = m.recommend(["nobody", "u1"], k=3, on_unknown="popular")
            assert recs.lengths[0] == 3
            assert recs.reasons is not None
            assert "popular" in recs.reasons[0]

    def test_refit_equals_fresh_fit(self, data: Dataset) -> None:
        if not self.deterministic:
            pytest.skip("model is not deterministic")
        for cfg in self.configs:
            a = self.model(**cfg).fit(data)
            b = self.model(**cfg)
            b.fit(data)
            b.fit(data)
            np.testing.assert_allclose(a.score(["u0", "u1"]), b.score(["u0", "u1"]), atol=self.atol)

    def test_save_load_round_trip(self, fitted: list[Recommender], tmp_path: Path) -> None:
        for n, m in enumerate(fitted):
            for target in (tmp_path / f"m{n}", tmp_path / f"m{n}.zip"):
                m.save(target)
                loaded = Recommender.load(target)
                assert type(loaded) is type(m)
                assert loaded.get_params() == m.get_params()
                np.testing.assert_allclose(
                    loaded.score(["u0", "u1"]), m.score(["u0", "u1"]), atol=self.atol
                )
                r1 = m.recommend(["u4"], k=5)
                r2 = loaded.recommend(["u4"], k=5)
                np.testing.assert_array_equal(r1.item_codes, r2.item_codes)

    def test_history(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            if not m.supports_history:
                pytest.skip("no fold-in")
            recs = m.recommend_for_history([100, 101, 102, 103], k=5)
            assert recs.lengths[0] == 5
            assert not {100, 101, 102, 103} & set(recs.items[0].tolist())
            empty = m.recommend_for_history([], k=3)
            assert empty.lengths[0] == 3

    def test_similar_items(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            if not m.supports_similar_items:
                pytest.skip("no similar_items")
            sim = m.similar_items([100, 121], k=5)
            assert sim.items.shape == (2, 5)
            assert 100 not in sim.items[0].tolist()

    def test_predict(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            if not m.supports_predict:
                pytest.skip("no predict")
            est = m.predict(["u0", "u0", "nobody"], [100, 99999, 100])
            assert est.shape == (3,)
            assert np.all(np.isfinite(est))

    # ------------------------------------------------------------------ construction
    def test_construction_sets_no_learned_attribute(self) -> None:
        for cfg in self.configs:
            m = self.model(**cfg)
            learned = [a for a in vars(m) if a.endswith("_") and not a.startswith("_")]
            assert learned == [], f"the constructor set learned attributes {learned}"

    def _rejected(self) -> list[tuple[str, dict[str, Any]]]:
        """(parameter named in the error, values) of every invalid value to try."""
        cases = [(name, {name: _invalid_value(spec)}) for name, spec in self.model.params.items()]
        cases += [(name, {name: value}) for name, value in self.invalid_params.items()]
        cases += [(next(iter(combo)), combo) for combo in self.invalid_combinations]
        return cases

    def test_structured_params_have_invalid_examples(self) -> None:
        structured = {n for n, spec in self.model.params.items() if spec.kind is None}
        missing = sorted(structured - set(self.invalid_params))
        assert missing == [], f"give invalid_params examples for the structured {missing}"

    def test_construction_rejects_invalid_values(self) -> None:
        for name, values in self._rejected():
            with pytest.raises(ConfigError, match=rf"'{name}'.*{self.model.__name__}"):
                self.model(**{**self.configs[0], **values})

    def test_set_params_validates_and_keeps_state(self) -> None:
        m = self.model(**self.configs[0])
        for name, values in self._rejected():
            before = m.get_params()
            with pytest.raises(ConfigError, match=rf"'{name}'.*{self.model.__name__}"):
                m.set_params(**values)
            assert m.get_params() == before, f"a rejected {name!r} changed the parameters"

    def test_set_params_takes_what_the_constructor_takes(self) -> None:
        for cfg in self.configs:
            m = self.model().set_params(**cfg)
            assert m.get_params() == self.model(**cfg).get_params()
            assert not [a for a in vars(m) if a.endswith("_") and not a.startswith("_")]

    def test_param_names_are_the_constructor(self) -> None:
        names = self.model.param_names()
        assert list(inspect.signature(self.model).parameters) == names
        assert list(self.model().get_params()) == names
        assert list(self.model.params) == names
        documented = re.findall(r"^(\w+) : ", (self.model.__doc__ or ""), re.M)
        assert [n for n in documented if n in names] == names, "Parameters section"

    # ------------------------------------------------------------------ protocol by codes
    def test_scores_by_code(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            codes = np.array([0, 3], dtype=np.int32)
            s = m.score_users(codes)
            assert s.shape == (2, m.n_items)
            assert s.dtype == np.float32
            np.testing.assert_allclose(s, m.score(m.users_.ids_of(codes)), atol=self.atol)
            s[:] = np.nan  # the caller owns the array: the next call is unaffected
            assert not np.isnan(m.score_users(codes)).all()
            fb = m.fallback_scores()
            assert fb.shape == (m.n_items,)
            assert np.isfinite(fb).all()
            with pytest.raises(UnknownIdError):
                m.score_users(np.array([m.n_users]))

    def test_user_history_is_the_training_data(
        self, fitted: list[Recommender], data: Dataset
    ) -> None:
        x = data.matrix()
        for m in fitted:
            codes, values = m.user_history(2)
            np.testing.assert_array_equal(codes, x[[2]].indices)
            np.testing.assert_allclose(values, x[[2]].data)
            assert m.seen_matrix().shape == (m.n_users, m.n_items)

    def test_score_history_matches_recommend_for_history(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            if not m.supports_history:
                with pytest.raises(UnsupportedCapabilityError):
                    m.score_history(np.array([0, 1]))
                continue
            codes = m.items_.codes([100, 101, 102])
            scores = m.score_history(codes)
            assert scores.shape == (m.n_items,)
            scores[codes] = -np.inf
            recs = m.recommend_for_history([100, 101, 102], k=5)
            best = np.sort(scores)[::-1][:5]
            np.testing.assert_allclose(recs.scores[0, : recs.lengths[0]], best, atol=1e-4)

    def test_item_vectors(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            if not m.supports_item_vectors:
                with pytest.raises(UnsupportedCapabilityError):
                    m.item_vectors()
                continue
            v = m.item_vectors()
            assert v.shape[0] == m.n_items
            assert v.shape[1] > 0

    def test_explain(self, fitted: list[Recommender]) -> None:
        for m in fitted:
            recs = m.recommend(["u0"], k=1)
            item = recs.items[0, 0]
            if not m.supports_explain:
                with pytest.raises(UnsupportedCapabilityError):
                    m.explain("u0", item)
                continue
            e = m.explain("u0", item)
            assert isinstance(e, Explanation)
            assert np.isfinite(e.score)
            assert e.to_dict()["item"] == e.item

    def test_epochs(self, data: Dataset) -> None:
        cfg = self.configs[0]
        if not self.model.supports_epochs:
            with pytest.raises(ConfigError, match="epochs"):
                self.model(**cfg).fit(data, callback=lambda epoch, model: None)
            return
        calls: list[int] = []

        def stop_at_first(epoch: int, model: Recommender) -> bool:
            calls.append(epoch)
            assert model.score_users(np.array([0])).shape == (1, data.n_items)
            return True

        m = self.model(**cfg).fit(data, callback=stop_at_first)
        assert calls == [0]
        assert m.is_fitted

    def test_add_items(self, fitted: list[Recommender], data: Dataset) -> None:
        for m in fitted:
            if not m.supports_new_items:
                with pytest.raises(UnsupportedCapabilityError):
                    m.add_items(pd.DataFrame(index=pd.Index([999_999], name="item")))
                continue
            attrs = data.item_attributes
            if attrs is None:
                pytest.skip("the contract data has no item attributes")
            new = attrs.iloc[:2].set_axis(pd.Index([999_998, 999_999], name=attrs.index.name))
            fresh = m.clone().fit(data)
            if fresh.get_params().get("features") == []:
                # a configuration that learns nothing from attributes says so
                with pytest.raises(DataError, match="without item features"):
                    fresh.add_items(new)
                continue
            grown = fresh.add_items(new)
            n = grown.n_items
            assert n == m.n_items + 2
            assert grown.seen_matrix().shape == (grown.n_users, n)
            assert grown.seen_matrix()[:, [n - 2, n - 1]].nnz == 0, "new items were seen"
            assert grown.fallback_scores().shape == (n,)
            assert grown.score_users(np.array([0])).shape == (1, n)
            recs = grown.recommend(["u0"], k=n, exclude_seen=False)
            assert {999_998, 999_999} <= set(recs.items[0, : recs.lengths[0]].tolist())

    def test_user_attributes(self, fitted: list[Recommender], data: Dataset) -> None:
        """Users known only by attributes are scored like the model's own cold users."""
        for m in fitted:
            if not m.supports_user_attributes:
                with pytest.raises(UnsupportedCapabilityError):
                    m.recommend_for_user_attributes(pd.DataFrame(index=pd.Index(["x"])))
                continue
            try:
                columns = m.user_attribute_columns()
            except DataError:  # this configuration learns nothing from user attributes
                continue
            attrs = data.user_attributes
            if attrs is None:
                pytest.skip("the contract data has no user attributes")
            frame = attrs[columns].iloc[:3]
            scores = m.score_user_attributes(frame)
            assert scores.shape == (3, m.n_items)
            assert scores.dtype == np.float32
            recs = m.recommend_for_user_attributes(frame, k=4)
            assert recs.users.tolist() == frame.index.tolist()
            np.testing.assert_allclose(
                recs.scores[:, 0], scores.max(axis=1), atol=1e-5, err_msg="top score"
            )
            with pytest.raises(DataError, match="missing column"):
                m.score_user_attributes(frame.drop(columns=columns[:1]))

    def test_inner_product_protocol(self, fitted: list[Recommender], tmp_path: Path) -> None:
        """Query and key vectors give the model's scores; an exact index gives its lists."""
        for n, m in enumerate(fitted):
            if not m.supports_inner_product:
                with pytest.raises(UnsupportedCapabilityError):
                    m.build_index("exact")
                continue
            users = np.arange(min(m.n_users, 6))
            keys = m.key_vectors()
            via_vectors = m.query_vectors(users) @ keys.T + m.query_offsets(users)[:, None]
            np.testing.assert_allclose(via_vectors, m.score_users(users), atol=1e-4)
            if m.supports_history:
                hist = m.items_.codes([100, 101, 102])
                query, offset = m.history_query(hist)
                np.testing.assert_allclose(keys @ query + offset, m.score_history(hist), atol=1e-4)
            ids = m.users_.ids[users]
            exact = m.recommend(ids, k=5, exact=True)
            m.build_index("exact", min_items=0)
            try:
                got = m.recommend(ids, k=5)
                np.testing.assert_array_equal(got.lengths, exact.lengths)
                np.testing.assert_allclose(got.scores, exact.scores, atol=1e-4)
                restored = type(m).load(m.save(tmp_path / f"indexed-{n}"))
                assert restored.index_spec == m.index_spec
                again = restored.recommend(ids, k=5)
                np.testing.assert_array_equal(again.item_codes, got.item_codes)
            finally:
                m.drop_index()


def _invalid_value(spec: Param) -> Any:
    """A value that ``spec`` must reject (a structured parameter: a bare number)."""
    if spec.kind is None:
        return 12345
    if spec.options is not None:
        return "definitely-not-an-option"
    if spec.kind in (int, float):
        if spec.low is not None:
            return spec.low - 1
        if spec.high is not None:
            return spec.high + 1
        return "not-a-number"
    return 12345 if spec.kind is str else "not-a-bool"
