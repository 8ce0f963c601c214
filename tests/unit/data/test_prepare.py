"""Preparation steps on tiny frames with known results, k-core stability, apply_steps."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.data import (
    Dataset,
    PrepareReport,
    apply_steps,
    deduplicate,
    filter_min_counts,
    k_core,
    to_implicit,
    weight,
    weighting,
)
from recforge.exceptions import ConfigError, DataError, DataWarning


def frame_of(ds: Dataset) -> list[tuple]:
    f = ds.to_frame()
    cols = [c for c in ("user", "item", "value", "time") if c in f]
    return [tuple(r) for r in f[cols].itertuples(index=False)]


@pytest.fixture
def dups() -> Dataset:
    # (u1, a) three times with times out of row order; (u2, a) twice; (u1, b) once
    frame = pd.DataFrame(
        {
            "user": ["u1", "u1", "u2", "u1", "u2", "u1"],
            "item": ["a", "a", "a", "b", "a", "a"],
            "value": [1.0, 2.0, 5.0, 3.0, 4.0, 6.0],
            "time": [30, 10, 50, 20, 40, 20],
        }
    )
    return Dataset.from_frame(frame, value="value", time="time", name="dups")


class TestDeduplicate:
    @pytest.mark.parametrize(
        ("policy", "expected"),
        [
            # first by time: (u1,a) earliest t=10 (row 1); (u2,a) earliest t=40 (row 4)
            ("first", [("u1", "a", 2.0, 10), ("u1", "b", 3.0, 20), ("u2", "a", 4.0, 40)]),
            ("last", [("u1", "a", 1.0, 30), ("u2", "a", 5.0, 50), ("u1", "b", 3.0, 20)]),
            ("sum", [("u1", "a", 9.0, 30), ("u2", "a", 9.0, 50), ("u1", "b", 3.0, 20)]),
            ("max", [("u1", "a", 6.0, 30), ("u2", "a", 5.0, 50), ("u1", "b", 3.0, 20)]),
            ("mean", [("u1", "a", 3.0, 30), ("u2", "a", 4.5, 50), ("u1", "b", 3.0, 20)]),
        ],
    )
    def test_policies_with_time(self, dups: Dataset, policy: str, expected: list) -> None:
        out, report = deduplicate(dups, policy)  # type: ignore[arg-type]
        assert frame_of(out) == expected
        assert report.n_before == 6
        assert report.n_after == 3
        assert report.removed == {"duplicate (user, item) pair": 3}
        assert dups.n_interactions == 6  # input untouched

    def test_row_order_without_time(self) -> None:
        frame = pd.DataFrame({"user": [1, 1, 1], "item": [7, 7, 8], "v": [1.0, 2.0, 3.0]})
        ds = Dataset.from_frame(frame, value="v")
        first, _ = deduplicate(ds, "first")
        last, _ = deduplicate(ds, "last")
        assert first.value.tolist() == [1.0, 3.0]
        assert last.value.tolist() == [2.0, 3.0]

    def test_no_duplicates_is_identity(self) -> None:
        ds = Dataset.from_frame(pd.DataFrame({"user": [1, 2], "item": [1, 1]}))
        out, report = deduplicate(ds)
        assert out.fingerprint() == ds.fingerprint()
        assert report.removed == {}
        assert report.n_removed == 0

    def test_unknown_policy(self, dups: Dataset) -> None:
        with pytest.raises(ConfigError, match="'policy' parameter of deduplicate must be one of"):
            deduplicate(dups, "median")  # type: ignore[arg-type]


@pytest.fixture
def chain() -> Dataset:
    # user counts: u1=3, u2=2, u3=1; item counts: a=3, b=2, c=1
    frame = pd.DataFrame(
        {
            "user": ["u1", "u1", "u1", "u2", "u2", "u3"],
            "item": ["a", "b", "c", "a", "b", "a"],
            "value": [5.0, 4.0, 3.0, 2.0, 1.0, 4.0],
        }
    )
    items = pd.DataFrame({"title": ["A", "B", "C", "D"]}, index=["a", "b", "c", "d"])
    return Dataset.from_frame(frame, value="value", item_attributes=items)


class TestFilters:
    def test_filter_min_counts_one_pass(self, chain: Dataset) -> None:
        out, report = filter_min_counts(chain, min_user=2, min_item=2)
        # u3 removed (1 row); c removed (1 row); u1 keeps a, b
        assert frame_of(out) == [
            ("u1", "a", 5.0),
            ("u1", "b", 4.0),
            ("u2", "a", 2.0),
            ("u2", "b", 1.0),
        ]
        assert report.removed == {
            "user has fewer than 2 interactions": 1,
            "item has fewer than 2 interactions": 1,
        }
        # u3 and c lost all interactions and leave the index; d (attributes only) stays
        assert out.users.ids.tolist() == ["u1", "u2"]
        assert out.items.ids.tolist() == ["a", "b", "d"]
        assert (report.users_dropped, report.items_dropped) == (1, 1)
        assert out.item_attributes is not None
        assert out.item_attributes.index.tolist() == ["a", "b", "d"]
        assert "removed 2" in str(report)

    def test_k_core_iterates(self, chain: Dataset) -> None:
        with pytest.warns(DataWarning, match="k_core removed all 6 interactions"):
            out, report = k_core(chain, k=3)
        # round 1 drops u2, u3 (users < 3) and c; then u1 has 2 < 3 -> everything goes
        assert out.n_interactions == 0
        assert report.n_removed == 6
        out2, report2 = k_core(chain, k_user=2, k_item=2)
        assert frame_of(out2) == frame_of(filter_min_counts(chain, 2, 2)[0])
        assert report2.params == {"k_user": 2, "k_item": 2}
        assert k_core(chain, 2)[1].params == {"k_user": 2, "k_item": 2}  # symmetric
        assert k_core(chain, 2, k_item=0)[1].params == {"k_user": 2, "k_item": 0}
        assert k_core(chain, k=3, k_item=1)[1].params == {"k_user": 3, "k_item": 1}

    def test_k_core_needs_k(self, chain: Dataset) -> None:
        with pytest.raises(ConfigError, match="k_core needs 'k'"):
            k_core(chain)
        with pytest.raises(ConfigError, match="'k_user' parameter of k_core must be an int >= 0"):
            k_core(chain, k_user=-1, k_item=1)

    def test_to_implicit(self, chain: Dataset) -> None:
        out, report = to_implicit(chain, threshold=4)
        assert frame_of(out) == [("u1", "a", 1.0), ("u1", "b", 1.0), ("u3", "a", 1.0)]
        assert report.removed == {"value below 4": 3}
        assert report.values_changed == 3  # 5, 4 and 4 become 1
        assert out.is_implicit
        assert out.users.ids.tolist() == ["u1", "u3"]

    def test_to_implicit_keeps_all_without_threshold(self, chain: Dataset) -> None:
        out, report = to_implicit(chain)
        assert out.n_interactions == 6
        assert report.removed == {}

    def test_to_implicit_bad_threshold(self, chain: Dataset) -> None:
        with pytest.raises(ConfigError, match="'threshold' parameter of to_implicit"):
            to_implicit(chain, threshold="high")  # type: ignore[arg-type]


class TestWeight:
    @pytest.mark.parametrize(
        ("scheme", "kwargs"),
        [("bm25", {"k1": 1.0, "b": 0.5}), ("tfidf", {}), ("log", {"alpha": 2.0}), ("linear", {})],
    )
    def test_matches_weighting_module(self, chain: Dataset, scheme: str, kwargs: dict) -> None:
        out, report = weight(chain, scheme, **kwargs)
        expected = weighting.weight_matrix(chain.matrix(), scheme, **kwargs)
        got = out.matrix()
        assert isinstance(got, sp.csr_array)
        np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-6)
        # rows keep their order, so times and codes line up with the input
        assert out.user.tolist() == chain.user.tolist()
        assert report.values_changed > 0

    def test_unknown_parameter(self, chain: Dataset) -> None:
        with pytest.raises(ConfigError, match=r"weight\(scheme='bm25'\) has no parameter 'alpha'"):
            weight(chain, "bm25", alpha=1.0)

    def test_unknown_scheme(self, chain: Dataset) -> None:
        with pytest.raises(ConfigError, match="'scheme' parameter of weight must be one of"):
            weight(chain, "magic")

    def test_duplicates_refused(self, dups: Dataset) -> None:
        with pytest.raises(DataError, match=r"3 duplicate .* run deduplicate first"):
            weight(dups, "log")


class TestApplySteps:
    def test_runs_in_order(self, dups: Dataset) -> None:
        out, reports = apply_steps(
            dups,
            [
                {"step": "deduplicate", "policy": "last"},
                {"step": "to_implicit", "threshold": 2},
                {"step": "k_core", "k": 1},
                {"step": "weight", "scheme": "log", "alpha": 1.0},
            ],
        )
        assert [r.step for r in reports] == ["deduplicate", "to_implicit", "k_core", "weight"]
        assert all(isinstance(r, PrepareReport) for r in reports)
        assert frame_of(out)[0][:2] == ("u2", "a")
        assert out.value.tolist() == pytest.approx([np.log(2.0)] * 2)
        assert reports[1].to_dict()["removed"] == {"value below 2": 1}

    def test_unknown_step(self, dups: Dataset) -> None:
        with pytest.raises(ConfigError, match=r"steps\[1\]: unknown step 'kcore' \(steps: "):
            apply_steps(dups, [{"step": "deduplicate"}, {"step": "kcore", "k": 5}])

    def test_unknown_parameter_fails_before_running(self, dups: Dataset) -> None:
        with pytest.raises(
            ConfigError,
            match=r"steps\[1\] \(k_core\): unknown parameter 'min' "
            r"\(parameters: k_user, k_item, k\)",
        ):
            apply_steps(dups, [{"step": "deduplicate"}, {"step": "k_core", "min": 5}])

    def test_scheme_parameters_checked(self, dups: Dataset) -> None:
        with pytest.raises(
            ConfigError, match=r"unknown parameter 'k1' \(parameters: scheme, alpha"
        ):
            apply_steps(dups, [{"step": "weight", "scheme": "log", "k1": 1}])

    def test_bad_value_names_step(self, dups: Dataset) -> None:
        with pytest.raises(ConfigError, match=r"steps\[0\] \(deduplicate\): The 'policy'"):
            apply_steps(dups, [{"step": "deduplicate", "policy": "median"}])

    def test_malformed(self, dups: Dataset) -> None:
        with pytest.raises(ConfigError, match=r"steps\[0\] has no 'step' key"):
            apply_steps(dups, [{"k": 5}])
        with pytest.raises(ConfigError, match=r"steps\[0\] must be a mapping"):
            apply_steps(dups, ["k_core"])  # type: ignore[list-item]
        with pytest.raises(ConfigError, match="steps must be a list"):
            apply_steps(dups, {"step": "k_core"})  # type: ignore[arg-type]


@st.composite
def interactions(draw: st.DrawFn) -> tuple[pd.DataFrame, int, int]:
    n_users = draw(st.integers(1, 12))
    n_items = draw(st.integers(1, 12))
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
            min_size=1,
            max_size=80,
        )
    )
    frame = pd.DataFrame(pairs, columns=["user", "item"])
    return frame, draw(st.integers(0, 5)), draw(st.integers(0, 5))


@settings(max_examples=80, deadline=None)
@given(interactions())
def test_k_core_is_stable_and_maximal(case: tuple[pd.DataFrame, int, int]) -> None:
    frame, ku, ki = case
    ds = Dataset.from_frame(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # emptied datasets are valid cases here
        out, report = k_core(ds, ku, ki)
    uc, ic = out.user_counts(), out.item_counts()
    # every remaining user / item meets the thresholds ...
    assert (uc[uc > 0] >= ku).all()
    assert (ic[ic > 0] >= ki).all()
    # ... no entity without interactions is left behind in the index ...
    assert (uc > 0).all()
    assert (ic > 0).all()
    # ... applying it again changes nothing ...
    again, rep2 = k_core(out, ku, ki)
    assert again.fingerprint() == out.fingerprint()
    assert rep2.n_removed == 0
    # ... and it equals the naive fixed point computed on the frame
    f = frame.copy()
    while True:
        bad = (f.groupby("user")["item"].transform("size") < ku) | (
            f.groupby("item")["user"].transform("size") < ki
        )
        if not bad.any():
            break
        f = f[~bad]
    got_users = out.users.ids_of(out.user).tolist()
    got = sorted(zip(got_users, out.items.ids_of(out.item).tolist(), strict=True))
    assert got == sorted(zip(f["user"].tolist(), f["item"].tolist(), strict=True))
    assert report.n_after == len(f)
