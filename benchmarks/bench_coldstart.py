"""Cold-start, hybrid and re-ranking benchmark: recforge content/hybrid models vs peers.

Run from the repository root::

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/bench_coldstart.py [--seeds 3] [--only small]

Experiments (each on MovieLens latest-small, shipped, with genres + tags + year as item
features, and on ML-100K from ``../shared/data/ml-100k`` with genres + year, skipped when
absent):

1. Cold-start items: ``cold_start_split(entity="item")`` holds out 20 % of the items; every
   test user ranks the items without training interactions (the cold catalog). Popularity
   cannot tell them apart; ContentBased, HybridMF, TwoTower (if torch imports) and LightFM
   (same feature matrix, if ``lightfm`` imports) use their attributes.
2. Cold-start users with 1, 3 and 5 known interactions (``cold_start_split(entity="user",
   known=n)``), full-catalog ranking.
3. Normal per-user split (20 % of each user's ratings held out): Blend (EASE + content +
   popularity, weights learned on a holdout of train) vs the best single model.
4. MMR re-ranking of EASE's top-60 by genre similarity: accuracy vs intra-list diversity,
   novelty and coverage as λ moves.
5. Fit time of HybridMF vs LightFM on the same feature matrix (``--experiments 5``).
6. Blend with and without the cold-item rule vs EASE on the per-user split
   (``--experiments 6``).

Every figure is the median over ``--seeds`` splits; fit times are medians too. Relevance is
"the user rated the item" (any rating), metrics are NDCG@10 and recall@20 over the held-out
items (``benchmarks/_common.ranking_metrics``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA_DIR, environment, markdown_table, ranking_metrics
from recforge.data import Dataset
from recforge.models.base import Recommender
from recforge.models.content import ContentBased
from recforge.models.hybrid import Blend, HybridMF
from recforge.models.popular import MostPopular
from recforge.models.rerank import Reranker, category_matrix
from recforge.split import Split, cold_start_split, random_split

SMALL_FEATURES: list[dict[str, Any]] = [
    {"kind": "categories", "column": "genres", "sep": "|", "idf": True},
    {
        "kind": "categories",
        "column": "tags",
        "sep": "|",
        "idf": True,
        "lowercase": True,
        "weight": 0.5,
    },
    {"kind": "numeric", "column": "year", "scale": "bins", "n_bins": 10, "weight": 0.3},
]
ML100K_FEATURES: list[dict[str, Any]] = [
    {"kind": "categories", "column": "genres", "sep": " ", "idf": True},
    {"kind": "numeric", "column": "year", "scale": "bins", "n_bins": 10, "weight": 0.3},
]
ML100K_USER_FEATURES: list[dict[str, Any]] = [
    {"kind": "numeric", "column": "age", "scale": "bins", "n_bins": 6},
    {"kind": "categories", "column": "gender", "sep": None},
    {"kind": "categories", "column": "occupation", "sep": None},
]
TWOTOWER = {"embedding_size": 64, "epochs": 20, "batch_size": 512, "threads": 2}
HYBRID = {"factors": 32, "epochs": 20, "learning_rate": 0.05, "loss": "warp", "max_sampled": 30}


# --------------------------------------------------------------------------- data
def load_small() -> Dataset:
    from recforge.data.datasets import load

    return load("movielens-small")


def load_100k() -> Dataset | None:
    root = DATA_DIR / "ml-100k"
    if not (root / "ratings.csv").is_file():
        print(f"ML-100K not found under {root}: skipped")
        return None
    ratings = pd.read_csv(root / "ratings.csv")
    items = pd.read_csv(root / "items.csv").set_index("item_id")
    items = items[["title", "year", "genres"]].copy()
    # one item has the year "unkonwn" in the source file: treat it as missing
    items["year"] = pd.to_numeric(items["year"], errors="coerce")
    users = pd.read_csv(root / "users.csv").set_index("user_id")[["age", "gender", "occupation"]]
    return Dataset.from_frame(
        ratings,
        user="user_id",
        item="item_id",
        value="rating",
        time="timestamp",
        item_attributes=items,
        user_attributes=users,
        name="ml-100k",
    )


def shuffled_items(ds: Dataset, seed: int = 12345) -> Dataset:
    """The same data with item codes in random order.

    Loaders number items by first appearance, which correlates with popularity; a model that
    gives cold items equal scores (popularity) would then profit from the tie-break by code.
    """
    from recforge.data import IdIndex

    perm = np.random.default_rng(seed).permutation(ds.items.ids)
    return Dataset.from_frame(
        ds.to_frame(),
        value="value",
        time="time" if ds.time is not None else None,
        item_attributes=ds.item_attributes,
        user_attributes=ds.user_attributes,
        items=IdIndex(perm),
        name=ds.name,
    )


# --------------------------------------------------------------------------- helpers
def truth_frame(test: Dataset) -> pd.DataFrame:
    return pd.DataFrame({"user": test.user.astype(np.int64), "item": test.item.astype(np.int64)})


def metrics_of(top: np.ndarray, users: np.ndarray, test: Dataset) -> dict[str, float]:
    return ranking_metrics(top, users, truth_frame(test), test.n_items)


def ranked(
    model: Recommender, users: np.ndarray, k: int = 20, candidates: np.ndarray | None = None
) -> np.ndarray:
    ids = model.users_.ids_of(users)
    cand = None if candidates is None else model.items_.ids_of(candidates)
    return model.recommend(ids, k=k, items=cand).item_codes


def timed_fit(model: Recommender, data: Dataset) -> float:
    t0 = time.perf_counter()
    model.fit(data)
    return time.perf_counter() - t0


class LightFMPeer:
    """LightFM on the same item feature matrix as HybridMF (identity + attribute features)."""

    def __init__(self, f: sp.csr_array, epochs: int, **kw: Any) -> None:
        from lightfm import LightFM

        f = sp.csr_array(f, dtype=np.float32)
        self.f = sp.csr_matrix(
            (f.data, f.indices.astype(np.int32), f.indptr.astype(np.int32)), shape=f.shape
        )
        self.epochs = epochs
        self.model = LightFM(**kw)

    @classmethod
    def like_hybrid(cls, f: sp.csr_array, params: Mapping[str, Any], **kw: Any) -> LightFMPeer:
        """WARP LightFM with HybridMF's ``params`` (factors, epochs, learning rate, samples)."""
        return cls(
            f,
            epochs=params["epochs"],
            no_components=params["factors"],
            loss="warp",
            learning_rate=params["learning_rate"],
            max_sampled=params["max_sampled"],
            **kw,
        )

    def fit(self, data: Dataset) -> float:
        m = data.matrix(binary=True).tocoo()
        x = sp.coo_matrix(
            (m.data.astype(np.float32), (m.row.astype(np.int32), m.col.astype(np.int32))),
            shape=m.shape,
        )
        t0 = time.perf_counter()
        self.model.fit(x, item_features=self.f, epochs=self.epochs, num_threads=2)
        return time.perf_counter() - t0

    def scores(self, users: np.ndarray) -> np.ndarray:
        bias, item_repr = self.model.get_item_representations(self.f)
        user_emb = self.model.user_embeddings[users]
        return (user_emb @ item_repr.T + bias[None, :]).astype(np.float32)


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def lightfm_available() -> bool:
    try:
        import lightfm  # noqa: F401
    except ImportError:
        return False
    return True


def top_from_scores(
    scores: np.ndarray, seen: sp.csr_array, users: np.ndarray, k: int, allowed: np.ndarray | None
) -> np.ndarray:
    from recforge._kernels.topk import topk

    s = np.array(scores, dtype=np.float32, copy=True)
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    idx, _ = topk(s, k, users.astype(np.int64), (seen.indptr, seen.indices))
    return idx


def median_rows(rows: list[dict[str, Any]], keys: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    return df.groupby(keys, sort=False).median(numeric_only=True).reset_index()


# --------------------------------------------------------------------------- experiments
def cold_items(ds: Dataset, features: list[dict[str, Any]], seeds: int) -> pd.DataFrame:
    rows = []
    for seed in range(seeds):
        split = cold_start_split(ds, entity="item", test_size=0.2, rng=seed)
        train, test = split.train, split.test
        cold = np.flatnonzero(train.item_counts() == 0).astype(np.int32)
        users = np.unique(test.user)
        models: dict[str, Recommender] = {
            "popular": MostPopular(),
            "content": ContentBased(features=features, weighting="binary"),
            "hybridmf": HybridMF(**HYBRID, features=features, rng=seed),
        }
        if torch_available():
            from recforge.models.twotower import TwoTower

            models["twotower"] = TwoTower(**TWOTOWER, features=features, rng=seed)
        for name, model in models.items():
            fit_s = timed_fit(model, train)
            top = ranked(model, users, 20, cold)
            rows.append(
                {"model": name, "seed": seed, **metrics_of(top, users, test), "fit_s": fit_s}
            )
        if lightfm_available():
            hmf = models["hybridmf"]
            assert isinstance(hmf, HybridMF)
            peer = LightFMPeer.like_hybrid(hmf.item_feature_matrix_, HYBRID, random_state=seed)
            fit_s = peer.fit(train)
            allowed = np.zeros(ds.n_items, dtype=bool)
            allowed[cold] = True
            top = top_from_scores(peer.scores(users), train.matrix(binary=True), users, 20, allowed)
            rows.append(
                {"model": "lightfm", "seed": seed, **metrics_of(top, users, test), "fit_s": fit_s}
            )
        print(f"  cold items seed {seed}: {len(cold)} cold items, {len(users)} test users")
    return median_rows(rows, ["model"]).drop(columns="seed")


def cold_users(ds: Dataset, features: list[dict[str, Any]], seeds: int) -> pd.DataFrame:
    rows = []
    for known in (1, 3, 5):
        for seed in range(seeds):
            split = cold_start_split(ds, entity="user", test_size=0.2, known=known, rng=seed)
            users = np.unique(split.test.user)
            models: dict[str, Recommender] = {
                "popular": MostPopular(),
                "content": ContentBased(features=features, weighting="binary"),
                "hybridmf": HybridMF(**HYBRID, features=features, rng=seed),
                "ease": _ease(),
                "blend(fallback)": _blend(features, min_user_interactions=10),
            }
            if ds.user_attributes is not None:
                models["hybridmf+user"] = HybridMF(
                    **HYBRID, features=features, user_features=ML100K_USER_FEATURES, rng=seed
                )
            for name, model in models.items():
                fit_s = timed_fit(model, split.train)
                top = ranked(model, users, 20)
                rows.append(
                    {
                        "known": known,
                        "model": name,
                        "seed": seed,
                        **metrics_of(top, users, split.test),
                        "fit_s": fit_s,
                    }
                )
        print(f"  cold users known={known} done")
    return median_rows(rows, ["known", "model"]).drop(columns="seed")


def _ease() -> Recommender:
    from recforge.models.linear import EASE

    return EASE(reg=500.0, binary=True, precision="float32")


def _blend(
    features: list[dict[str, Any]], min_user_interactions: int = 0, cold_items: bool = True
) -> Blend:
    """EASE + content + popularity; users with short histories switch to popularity."""
    return Blend(
        members=[
            {"model": "ease", "params": {"reg": 500.0, "binary": True, "precision": "float32"}},
            {"model": "content", "params": {"features": features, "weighting": "binary"}},
            {"model": "popular", "params": {}},
        ],
        normalization="zscore",
        min_user_interactions=min_user_interactions,
        fallback=2 if min_user_interactions else None,
        cold_item_member=1 if cold_items else None,
    )


def normal_split(
    ds: Dataset, features: list[dict[str, Any]], seeds: int
) -> tuple[pd.DataFrame, list[list[float]]]:
    rows = []
    weights = []
    for seed in range(seeds):
        split: Split = random_split(ds, 0.2, per_user=True, rng=seed)
        users = np.unique(split.test.user)
        models: dict[str, Recommender] = {
            "popular": MostPopular(),
            "content": ContentBased(features=features, weighting="binary"),
            "hybridmf": HybridMF(**HYBRID, features=features, rng=seed),
            "ease": _ease(),
            "blend": _blend(features),
        }
        for name, model in models.items():
            fit_s = timed_fit(model, split.train)
            top = ranked(model, users, 20)
            rows.append(
                {"model": name, "seed": seed, **metrics_of(top, users, split.test), "fit_s": fit_s}
            )
        blend = models["blend"]
        assert isinstance(blend, Blend)
        weights.append([round(float(w), 3) for w in blend.weights_])
        print(f"  per-user split seed {seed} done (blend weights {weights[-1]})")
    return median_rows(rows, ["model"]).drop(columns="seed"), weights


def mmr_sweep(ds: Dataset, category_sep: str, seeds: int) -> pd.DataFrame:
    rows = []
    attrs = ds.item_attributes
    assert attrs is not None
    for seed in range(seeds):
        split = random_split(ds, 0.2, per_user=True, rng=seed)
        users = np.unique(split.test.user)
        model = _ease().fit(split.train)
        cats, _ = category_matrix(attrs, model.items_, "genres", category_sep)
        norms = np.sqrt(np.asarray(cats.multiply(cats).sum(axis=1)).ravel())
        unit = sp.csr_array(
            sp.diags_array(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ cats
        )
        pop = split.train.item_counts().astype(np.float64)
        n_users = max(int((split.train.user_counts() > 0).sum()), 1)
        info = -np.log2(np.maximum(pop, 1.0) / n_users)
        for lam in (1.0, 0.9, 0.7, 0.5, 0.3):
            r = Reranker(attributes=attrs, diversity=lam, sep=category_sep, candidates=3)
            t0 = time.perf_counter()
            recs = r.rerank(model, model.users_.ids_of(users), k=20)
            rerank_s = time.perf_counter() - t0
            top = recs.item_codes
            m = metrics_of(top, users, split.test)
            t10 = top[:, :10]
            v = unit[np.where(t10 >= 0, t10, 0).ravel()].toarray().reshape(*t10.shape, -1)
            sim = np.einsum("nkf,njf->nkj", v, v)
            kk = t10.shape[1]
            ild = float(
                np.mean(
                    1.0 - (sim.sum(axis=(1, 2)) - np.trace(sim, axis1=1, axis2=2)) / (kk * (kk - 1))
                )
            )
            novelty = float(np.mean(info[np.where(t10 >= 0, t10, 0)]))
            rows.append(
                {
                    "lambda": lam,
                    "seed": seed,
                    "ndcg@10": m["ndcg@10"],
                    "recall@20": m["recall@20"],
                    "ild@10": ild,
                    "novelty@10": novelty,
                    "coverage@10": m["coverage@10"],
                    "rerank_s": rerank_s,
                }
            )
    return median_rows(rows, ["lambda"]).drop(columns="seed")


def fit_times(ds: Dataset, features: list[dict[str, Any]], repeats: int = 3) -> pd.DataFrame:
    """HybridMF vs LightFM fit time on the same feature matrix, after a warm-up fit."""
    params = {**HYBRID, "epochs": 10}
    warm = HybridMF(**{**params, "epochs": 1}, features=features).fit(ds)
    rows = []
    for r in range(repeats):
        rows.append(
            {
                "model": "hybridmf",
                "run": r,
                "fit_s": timed_fit(HybridMF(**params, features=features), ds),
            }
        )
    if lightfm_available():
        peer = LightFMPeer.like_hybrid(warm.item_feature_matrix_, params)
        peer.fit(ds)
        for r in range(repeats):
            rows.append({"model": "lightfm", "run": r, "fit_s": peer.fit(ds)})
    return median_rows(rows, ["model"]).drop(columns="run")


def blend_variants(ds: Dataset, features: list[dict[str, Any]], seeds: int) -> pd.DataFrame:
    """EASE vs Blend with and without the cold-item rule on the per-user split."""
    rows = []
    for seed in range(seeds):
        split = random_split(ds, 0.2, per_user=True, rng=seed)
        users = np.unique(split.test.user)
        models: dict[str, Recommender] = {
            "ease": _ease(),
            "blend (no cold-item rule)": _blend(features, cold_items=False),
            "blend (cold items -> content)": _blend(features, cold_items=True),
        }
        for name, model in models.items():
            fit_s = timed_fit(model, split.train)
            top = ranked(model, users, 20)
            rows.append(
                {"model": name, "seed": seed, **metrics_of(top, users, split.test), "fit_s": fit_s}
            )
        print(f"  blend variants seed {seed} done")
    return median_rows(rows, ["model"]).drop(columns="seed")


# --------------------------------------------------------------------------- main
def fmt(df: pd.DataFrame) -> str:
    return markdown_table(df.to_dict("records"))


def ratios(df: pd.DataFrame, base: str, metric: str) -> str:
    b = float(df.loc[df["model"] == base, metric].iloc[0])
    parts = []
    for _, row in df.iterrows():
        if row["model"] != base:
            val = float(row[metric]) / b if b > 0 else float("inf")
            parts.append(f"{row['model']}/{base} {metric}: {val:.2f}x")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="splits per experiment (median)")
    parser.add_argument("--only", choices=["small", "100k"], default=None)
    parser.add_argument("--experiments", default="1234", help="which experiments to run, e.g. '13'")
    args = parser.parse_args(argv)
    print(environment())
    sets: list[tuple[str, Callable[[], Dataset | None], list[dict[str, Any]], str]] = []
    if args.only in (None, "small"):
        sets.append(("ml-latest-small", load_small, SMALL_FEATURES, "|"))
    if args.only in (None, "100k"):
        sets.append(("ml-100k", load_100k, ML100K_FEATURES, " "))
    for label, loader, features, sep in sets:
        loaded = loader()
        if loaded is None:
            continue
        ds = shuffled_items(loaded)
        print(f"\n## {label}: {ds}")
        if "1" in args.experiments:
            df = cold_items(ds, features, args.seeds)
            print("\n### (1) cold-start items (ranking among cold items)\n" + fmt(df))
            print(ratios(df, "popular", "ndcg@10"))
            print(ratios(df, "popular", "recall@20"))
        if "2" in args.experiments:
            df = cold_users(ds, features, args.seeds)
            print("\n### (2) cold-start users (known = interactions kept in train)\n" + fmt(df))
        if "3" in args.experiments:
            df, weights = normal_split(ds, features, args.seeds)
            print("\n### (3) per-user split: Blend vs single models\n" + fmt(df))
            print(f"blend weights (ease, content, popular) per seed: {weights}")
            best = df[df["model"] != "blend"].sort_values("ndcg@10").iloc[-1]["model"]
            print(ratios(df[df["model"].isin(["blend", best])], best, "ndcg@10"))
        if "6" in args.experiments:
            df = blend_variants(ds, features, args.seeds)
            print("\n### (6) per-user split: Blend with/without the cold-item rule\n" + fmt(df))
        if "5" in args.experiments:
            df = fit_times(ds, features)
            print("\n### (5) fit time, 10 WARP epochs, median of 3 after a warm-up\n" + fmt(df))
        if "4" in args.experiments:
            df = mmr_sweep(ds, sep, args.seeds)
            print(
                "\n### (4) MMR on EASE top-60 (3 x k=20 candidates): accuracy vs diversity\n"
                + fmt(df)
            )
    print(f"\nfigures are medians over {args.seeds} seeds")


if __name__ == "__main__":
    main()
