"""Scaling of the factor models on synthetic data: recforge vs implicit.

For each size (interactions) the data come from :func:`recforge.data.synthetic.synthetic`
(Zipf item popularity, log-normal user activity, low-rank preferences); both libraries get
the same binary user x item matrix. Measured, side by side in one process:

* ALS (64 factors, CG with 3 steps, 2 numba / implicit threads): fit time per iteration
  (a fit of ``--als-iterations`` iterations divided by their number; includes the one-off
  confidence weighting and transposition);
* BPR (64 factors): fit time per epoch (``--bpr-epochs`` epochs, one sample per
  interaction each);
* time to the top-10 lists of every user (training items excluded) from the fitted ALS
  model, each library through its own recommend call;
* peak resident memory increase during each step (psutil sampling, ``_common.measure``).

Every step is timed ``--repeats`` times and the median reported. BLAS runs single-threaded
during fits (as implicit requires) and with ``--threads`` threads while recommending.

Run::

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000000 10000000] [--threads 2]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, markdown_table, measure

FACTORS = 64
#: users and items per size: about 50 interactions per user, catalog growing with the data
SHAPES = {
    1_000_000: (20_000, 10_000),
    10_000_000: (200_000, 50_000),
    50_000_000: (1_000_000, 100_000),
}


def _shape(n: int) -> tuple[int, int]:
    if n in SHAPES:
        return SHAPES[n]
    return max(100, n // 50), max(100, int(10 * np.sqrt(n)))


def run_size(n: int, threads: int, repeats: int, als_iters: int, bpr_epochs: int) -> list[dict]:
    import implicit
    import numba
    from threadpoolctl import threadpool_limits

    from recforge.data.synthetic import synthetic
    from recforge.models.als import ALS
    from recforge.models.bpr import BPR

    numba.set_num_threads(threads)
    n_users, n_items = _shape(n)
    ds = synthetic(n_users, n_items, n, rng=0, implicit=True)
    csr = sp.csr_matrix(ds.matrix(binary=True))
    users = np.arange(n_users)
    print(f"{n} interactions: {n_users} users x {n_items} items", flush=True)
    # JIT warm-up on a slice
    small = ds.subset(np.arange(min(20_000, n)))
    ALS(factors=FACTORS, iterations=1, rng=0).fit(small).recommend(small.users.ids[:10], k=10)
    BPR(factors=FACTORS, epochs=1, rng=0).fit(small)

    models: dict[str, Any] = {}

    def rf_als() -> None:
        models["rf"] = ALS(factors=FACTORS, iterations=als_iters, rng=0).fit(ds)

    def im_als() -> None:
        m = implicit.als.AlternatingLeastSquares(
            factors=FACTORS, iterations=als_iters, num_threads=threads, random_state=0
        )
        m.fit(csr, show_progress=False)
        models["im"] = m

    def rf_bpr() -> None:
        BPR(factors=FACTORS, epochs=bpr_epochs, rng=0).fit(ds)

    def im_bpr() -> None:
        implicit.bpr.BayesianPersonalizedRanking(
            factors=FACTORS, iterations=bpr_epochs, num_threads=threads, random_state=0
        ).fit(csr, show_progress=False)

    def rf_rec() -> None:
        models["rf"].recommend(ds.users.ids, k=10)

    def im_rec() -> None:
        models["im"].recommend(users, csr, N=10, filter_already_liked_items=True)

    rows = []
    steps = [
        ("ALS fit / iteration", rf_als, im_als, als_iters, 1),
        ("BPR fit / epoch", rf_bpr, im_bpr, bpr_epochs, 1),
        ("top-10 all users", rf_rec, im_rec, 1, threads),
    ]
    for step, rf, im, per, blas in steps:
        res = {}
        for lib, fn in (("recforge", rf), ("implicit", im)):
            with threadpool_limits(blas):
                m = measure(fn, repeats=repeats)
            res[lib] = m
            print(
                f"  {step:20s} {lib:9s} {m.median_s / per:8.3f} s  {m.peak_mb:8.1f} MiB", flush=True
            )
        rows.append(
            {
                "interactions": f"{n:,}",
                "users x items": f"{n_users:,} x {n_items:,}",
                "step": step,
                "recforge s": res["recforge"].median_s / per,
                "implicit s": res["implicit"].median_s / per,
                "implicit / recforge": res["implicit"].median_s / res["recforge"].median_s,
                "recforge peak MiB": res["recforge"].peak_mb,
                "implicit peak MiB": res["implicit"].peak_mb,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--als-iterations", type=int, default=3)
    parser.add_argument("--bpr-epochs", type=int, default=2)
    args = parser.parse_args()
    print(environment())
    rows: list[dict] = []
    for n in args.sizes:
        rows += run_size(n, args.threads, args.repeats, args.als_iterations, args.bpr_epochs)
    print()
    print(markdown_table(rows, floatfmt=".3f"))


if __name__ == "__main__":
    main()
