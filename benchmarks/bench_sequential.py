"""SASRec (softmax and gBCE) against EASE and MostPopular on MovieLens 1M sequences.

Protocol (the usual one for sequential models): leave-one-out by time, each user's last item
is the test item and the second-to-last the validation item. Every model is fitted on
train + validation; SASRec holds each user's last training item (= the validation item) out
of its own training, keeps the epoch with the best validation NDCG@10 and reads the whole
sequence when scoring. Lists rank the full catalogue with training items excluded, and the
recforge evaluation engine scores them (NDCG@10, HR@10). Training time is the wall time of
``fit``; peak memory is the resident-set increase during ``fit`` (needs psutil) and the
process's maximum resident set so far (models run in the order given).

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_sequential.py --minutes 30
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from typing import Any

from _common import DATA_DIR, environment, markdown_table, measure
from recforge.data import Dataset, read_sequences
from recforge.evaluation import EvaluationProtocol, evaluate_model
from recforge.models import Recommender, model_class
from recforge.split import leave_one_out

MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "popular": ("popular", {}),
    "ease": ("ease", {"reg": 500.0}),
    "sasrec-softmax": ("sasrec", {"loss": "softmax"}),
    "sasrec-gbce": ("sasrec", {"loss": "gbce"}),
}


def _time_limit(minutes: float, label: str) -> Any:
    """Epoch callback that prints progress and stops training after ``minutes``."""
    start = time.perf_counter()

    def callback(epoch: int, model: Recommender) -> bool:
        elapsed = time.perf_counter() - start
        scores = getattr(model, "valid_scores_", [])
        last = f"{scores[-1]:.4f}" if scores else "-"
        print(f"  {label} epoch {epoch}: valid ndcg@10 {last}, {elapsed:.0f} s", flush=True)
        return elapsed > minutes * 60

    return callback


def run(name: str, train: Dataset, test: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    key, params = MODELS[name]
    cls = model_class(key)
    extra: dict[str, Any] = {}
    if key == "sasrec":
        params = {
            **params,
            "rng": args.seed,
            "threads": args.threads,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
        }
        extra = {"callback": _time_limit(args.minutes, name)}
    model = cls(**params)
    m = measure(lambda: model.fit(train, **extra), repeats=1)
    protocol = EvaluationProtocol(metrics=("ndcg", "hit_rate"), ks=(10,))
    ev = evaluate_model(model, train, test, protocol, label=name)
    row: dict[str, Any] = {
        "model": name,
        "ndcg@10": ev.value("ndcg", 10),
        "hr@10": ev.value("hit_rate", 10),
        "fit s": m.median_s,
        "peak MiB": m.peak_mb,
        "process max RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if key == "sasrec":
        row["epochs run"] = len(model.loss_)  # type: ignore[attr-defined]
        row["best epoch"] = model.best_epoch_ + 1  # type: ignore[attr-defined]
        row["best valid ndcg@10"] = max(model.valid_scores_)  # type: ignore[attr-defined]
    print(row, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--minutes", type=float, default=30.0, help="training cap per SASRec")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = DATA_DIR / "ml-1m-seq" / "sequences.txt"
    if not path.is_file():
        print(f"MovieLens 1M sequences not found at {path}", file=sys.stderr)
        return 1
    ds = read_sequences(path)
    split = leave_one_out(ds, by="time", valid=True)
    assert split.valid is not None
    train = split.train.concat(split.valid)
    print(environment(), f"torch threads={args.threads}", flush=True)
    rows = [run(name, train, split.test, args) for name in args.models]
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
