"""recforge on Spark vs the local path.

``als``: MLlib ALS (``recforge.spark.fit_als``, exported as a recforge ALS) vs recforge's ALS
on MovieLens (binarised, per-user 80/20 split of ``_common.per_user_split``), same factors,
iterations, regularisation and alpha, both evaluated by recforge's one evaluation engine.

``pipeline``: read Parquet, deduplicate, 5-core, temporal per-user split and batch scoring
(top-10 of every test user with one saved model) of a synthetic interaction set, on Spark
and locally, each in its own process so each peak memory is its own (driver process plus its
children: on ``local[n]`` the JVM runs the executors).

Commands (see benchmarks/RESULTS.md)::

    nice -n 10 timeout 900 python benchmarks/bench_spark.py als --master 'local[2]'
    nice -n 10 timeout 900 python benchmarks/bench_spark.py pipeline --n 1000000 --master 'local[2]'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from _common import binarize, load_ratings, markdown_table, per_user_split, to_dataset

STEPS = [{"step": "deduplicate", "policy": "last"}, {"step": "k_core", "k": 5}]
SPLIT = {"method": "temporal", "per_user_last": 1}


class TreeRss:
    """Peak resident memory of this process and all its descendants (polled from /proc)."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _children(pid: int) -> list[int]:
        out: list[int] = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
        return out

    def _tree_rss(self) -> int:
        total, todo = 0, [os.getpid()]
        while todo:
            pid = todo.pop()
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
            todo += self._children(pid)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            time.sleep(self.interval)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- ALS
def bench_als(args: argparse.Namespace) -> None:
    from recforge import spark as rs
    from recforge.evaluation import EvaluationProtocol, evaluate_model
    from recforge.models.als import ALS

    frame = binarize(load_ratings(args.data))
    split = per_user_split(frame, seed=42)
    train = to_dataset(split.train_full, split.n_users, split.n_items, implicit=True)
    test = to_dataset(split.test, split.n_users, split.n_items, implicit=True)
    params = {
        "factors": args.factors,
        "iterations": args.iterations,
        "reg": args.reg,
        "alpha": args.alpha,
    }
    protocol = EvaluationProtocol(metrics=("ndcg", "recall", "coverage"), ks=(10,))
    spark = rs.spark_session(args.master, shuffle_partitions=4, driver_memory="2g")
    strain = rs.from_dataset(spark, train)
    strain.interactions.cache().count()
    rows = []
    for label, fit in (
        ("recforge ALS (cholesky)", lambda: ALS(**params, solver="cholesky", rng=0).fit(train)),
        ("recforge ALS (cg)", lambda: ALS(**params, rng=0).fit(train)),
        ("MLlib ALS (fit_als)", lambda: rs.fit_als(strain, **params, rng=0)),
    ):
        t0 = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - t0
        ev = evaluate_model(model, train, test, protocol, label=label)
        rows.append(
            {
                "model": label,
                "ndcg@10": ev.value("ndcg", 10),
                "recall@10": ev.value("recall", 10),
                "coverage@10": ev.value("coverage", 10),
                "fit s": seconds,
            }
        )
    spark.stop()
    print(f"data {args.data}, {params}, master {args.master}")
    print(markdown_table(rows))


# --------------------------------------------------------------------------- pipeline
def _write_data(n: int, path: Path) -> None:
    from recforge.data import synthetic

    ds = synthetic(max(n // 50, 100), max(n // 100, 50), n, rng=0)
    gen = np.random.default_rng(1)
    frame = ds.to_frame()
    frame["time"] = gen.integers(0, 10**9, len(frame))
    dup = frame.sample(frac=0.05, random_state=2)  # repeats for deduplicate
    pd.concat([frame, dup], ignore_index=True).to_parquet(path)


def _local_path(data: Path, model_path: Path, out: Path) -> dict[str, Any]:
    from recforge.data import Dataset
    from recforge.data.prepare import apply_steps
    from recforge.models import Recommender
    from recforge.split import split_by_name

    t = {}
    t0 = time.perf_counter()
    ds = Dataset.from_parquet(data, user="user", item="item", value="value", time="time")
    ds, _ = apply_steps(ds, STEPS)
    split = split_by_name(ds, SPLIT)
    t["prepare+split s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = Recommender.load(model_path)
    users = np.unique(split.test.users.ids_of(split.test.user))
    recs = model.recommend(users, 10, on_unknown="popular").to_frame()
    recs.to_parquet(out)
    t["score s"] = time.perf_counter() - t0
    t["interactions"], t["test users"], t["rows"] = len(ds), len(users), len(recs)
    return t


def _spark_path(data: Path, model_path: Path, out: Path, master: str) -> dict[str, Any]:
    from recforge import spark as rs

    spark = rs.spark_session(master, shuffle_partitions=8, driver_memory="2g")
    t = {}
    t0 = time.perf_counter()
    ds = rs.read_parquet(spark, str(data), user="user", item="item", value="value", time="time")
    ds, _ = rs.apply_steps(ds, STEPS)
    split = rs.split_by_name(ds, SPLIT)
    n = split.train.count() + split.test.count()
    t["prepare+split s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    users = split.test.to_frame().select("user").distinct()
    recs = rs.recommend(str(model_path), users, k=10, on_unknown="popular", path=str(out))
    rows = recs.count()
    t["score s"] = time.perf_counter() - t0
    t["interactions"], t["test users"], t["rows"] = n, users.count(), rows
    spark.stop()
    return t


def _child(args: argparse.Namespace) -> None:
    with TreeRss() as rss:
        t0 = time.perf_counter()
        if args.engine == "local":
            out = _local_path(Path(args.data_file), Path(args.model), Path(args.out))
        else:
            out = _spark_path(Path(args.data_file), Path(args.model), Path(args.out), args.master)
        out["total s"] = time.perf_counter() - t0
    out["peak RSS MiB (process tree)"] = rss.peak / 2**20
    print("RESULT " + json.dumps(out))


def bench_pipeline(args: argparse.Namespace) -> None:
    from recforge.data import Dataset
    from recforge.data.prepare import apply_steps
    from recforge.models.als import ALS
    from recforge.split import split_by_name

    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        root = Path(tmp)
        data = root / "interactions.parquet"
        _write_data(args.n, data)
        ds = Dataset.from_parquet(data, user="user", item="item", value="value", time="time")
        train = split_by_name(apply_steps(ds, STEPS)[0], SPLIT).train
        ALS(factors=32, iterations=3, rng=0).fit(train).save(root / "model.zip")
        del ds, train
        results = {}
        for engine in ("local", "spark"):
            cmd = [
                sys.executable,
                __file__,
                "_child",
                "--engine",
                engine,
                "--data-file",
                str(data),
                "--model",
                str(root / "model.zip"),
                "--out",
                str(root / f"recs-{engine}"),
                "--master",
                args.master,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
            results[engine] = json.loads(line[7:])
            print(engine, results[engine], flush=True)
        a = pd.read_parquet(root / "recs-local").sort_values(["user", "rank"], ignore_index=True)
        b = pd.read_parquet(root / "recs-spark").sort_values(["user", "rank"], ignore_index=True)
        same = a[["user", "item", "rank"]].equals(
            b[["user", "item", "rank"]].astype(a[["user", "item", "rank"]].dtypes.to_dict())
        )
        results["spark"]["same lists as local"] = bool(same)
        results["local"]["same lists as local"] = True
    rows = [
        {"engine": f"{e} ({args.master})" if e == "spark" else e, **r} for e, r in results.items()
    ]
    print(f"{args.n:,} synthetic interactions (+5 % repeats), steps {STEPS}, split {SPLIT}")
    print(markdown_table(rows, floatfmt=".1f"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    als = sub.add_parser("als")
    als.add_argument("--data", default="ml-100k")
    als.add_argument("--master", default="local[2]")
    als.add_argument("--factors", type=int, default=64)
    als.add_argument("--iterations", type=int, default=15)
    als.add_argument("--reg", type=float, default=0.1)
    als.add_argument("--alpha", type=float, default=1.0)
    pipe = sub.add_parser("pipeline")
    pipe.add_argument("--n", type=int, default=1_000_000)
    pipe.add_argument("--master", default="local[2]")
    child = sub.add_parser("_child")
    for name in ("--engine", "--data-file", "--model", "--out", "--master"):
        child.add_argument(name)
    args = parser.parse_args()
    {"als": bench_als, "pipeline": bench_pipeline, "_child": _child}[args.cmd](args)


if __name__ == "__main__":
    main()
