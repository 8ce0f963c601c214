"""``recforge replay`` end to end on small synthetic data: the real path, consistent numbers.

The static arm posts nothing, so its lists are the initial model's: per known user, the share
of their replayed events that were hits must equal the evaluation engine's recall@k of the
same model on the same events (each event of a user is one relevant item), and every rank the
service answered must be the rank the model contract gives. The online arm must have stored
exactly the replayed events (ids ``replay-<position>``) and answered with fold-in; the
periodic arm must have hot-swapped to the refreshed version at the boundary.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recforge.cli import app
from recforge.data import Dataset
from recforge.datasets import synthetic
from recforge.evaluation import EvaluationProtocol, evaluate_model
from recforge.models.linear import EASE
from recforge.serving.replay import cluster_bootstrap, split_stream
from recforge.serving.store import EventStore

pytestmark = pytest.mark.slow

N_EVENTS = 240
EVERY = 120


def _data() -> Dataset:
    ds = synthetic(n_users=150, n_items=80, n_interactions=3000, rng=1)
    frame = ds.to_frame()
    order = np.random.default_rng(2).permutation(len(frame))
    frame["time"] = 1_700_000_000 + order.astype(np.int64) * 60
    return Dataset.from_frame(frame, value="value", time="time", name="small")


def test_replay_runs_through_the_service_and_agrees_with_offline_evaluation(
    tmp_path: Path,
) -> None:
    ds = _data()
    csv = tmp_path / "small.csv"
    ds.to_frame().to_csv(csv, index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "replay", str(csv), "-m", "ease:reg=20", "-n", str(N_EVENTS), "-k", "5",
            "--retrain-every", str(EVERY), "--periodic-mode", "refresh", "--bootstrap", "200",
            "--windows", "4", "-o", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "paired differences" in result.output
    events = pd.read_parquet(out / "replay_events.parquet")
    doc = json.loads((out / "replay.json").read_text())
    page = (out / "replay.html").read_text()
    assert "Prequential accuracy" in page
    assert "<svg" in page
    assert sorted(events["arm"].unique()) == ["online", "periodic", "static"]
    assert (events.groupby("arm").size() == N_EVENTS).all()

    # offline reference: the same recipe on the same initial data, the same stream
    initial, stream, offset = split_stream(ds, 0.8, N_EVENTS)
    assert offset == 0
    assert doc["settings"]["n_initial"] == initial.n_interactions
    model = EASE(reg=20.0).fit(initial)
    static = events[events["arm"] == "static"].sort_values("position")
    assert static["model_version"].eq("v000001").all()
    assert static["reason"].isin(["personalised", "unknown user: most popular items"]).all()

    known = stream["user"].isin(initial.users.ids) & stream["item"].isin(initial.items.ids)
    sel = stream[known]
    recs = model.recommend(sel["user"].unique(), 5)
    lists = {u: list(recs.items[j][: recs.lengths[j]]) for j, u in enumerate(recs.users)}
    expected = [
        lists[u].index(i) + 1 if i in lists[u] else 0
        for u, i in zip(sel["user"], sel["item"], strict=True)
    ]
    assert static["rank"].to_numpy()[known.to_numpy()].tolist() == expected

    test = initial.with_interactions(
        initial.users.codes(sel["user"].to_numpy()),
        initial.items.codes(sel["item"].to_numpy()),
        sel["value"].to_numpy(),
    )
    ev = evaluate_model(model, initial, test, EvaluationProtocol(metrics=("recall",), ks=(5,)))
    pu = ev.per_user
    recall = pu[(pu["group"] == "known") & (pu["metric"] == "recall")].set_index("user")["value"]
    hits = static[known.to_numpy()].groupby(sel["user"].to_numpy())["hit"].mean()
    recall.index = recall.index.astype(hits.index.dtype)
    pd.testing.assert_series_equal(
        hits.sort_index(), recall.sort_index(), check_names=False, check_index_type=False
    )

    # the online arm fed the real store and the service folded the events in
    online = events[events["arm"] == "online"]
    stored = EventStore(f"sqlite:///{out / 'work' / 'online' / 'events.db'}").events_frame()
    assert stored["event_id"].tolist() == [f"replay-{p}" for p in range(N_EVENTS)]
    assert (stored["time"].to_numpy() == stream["time"].to_numpy()).all()
    assert online["reason"].str.contains("online fold-in").any()
    assert online["model_version"].eq("v000001").all()
    assert [r["arm"] for r in doc["overall"]] == ["static", "online", "periodic"]

    # the periodic arm swapped to the refreshed model exactly at the boundary
    periodic = events[events["arm"] == "periodic"].sort_values("position")
    before = periodic["position"] < EVERY
    assert periodic.loc[before, "model_version"].eq("v000001").all()
    assert periodic.loc[~before, "model_version"].eq("v000002").all()
    assert [r["before_event"] for r in doc["retrains"]] == [EVERY]
    assert doc["retrains"][0]["promoted"] is True

    # summaries are the bootstrap of the per-event table
    ov = {r["arm"]: r for r in doc["overall"]}
    for arm in ("static", "online", "periodic"):
        part = events[events["arm"] == arm]
        mean, lo, hi = cluster_bootstrap(part["hit"], part["user"], n_boot=200, rng=0)
        assert ov[arm]["hit_rate"] == pytest.approx(mean)
        assert ov[arm]["hit_rate_low"] == pytest.approx(lo)
        assert ov[arm]["hit_rate_high"] == pytest.approx(hi)
        assert lo <= mean <= hi
    diff = {(d["comparison"], d["metric"]): d for d in doc["differences"]}
    d = diff[("online - static", "hit_rate")]
    assert d["difference"] == pytest.approx(ov["online"]["hit_rate"] - ov["static"]["hit_rate"])


def test_replay_refuses_data_without_times_and_bad_settings(tmp_path: Path) -> None:
    ds = synthetic(n_users=20, n_items=10, n_interactions=100, rng=0)
    csv = tmp_path / "no-time.csv"
    ds.to_frame().drop(columns="time", errors="ignore").to_csv(csv, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["replay", str(csv), "-o", str(tmp_path / "o1")])
    assert result.exit_code == 2
    assert "has no timestamps" in result.output
    result = runner.invoke(app, ["replay", str(csv), "--retrain-every", "soon"])
    assert result.exit_code == 2
    assert "--retrain-every" in result.output
