"""Building a dataset from a large Parquet file: recforge vs a pandas-only equivalent.

Writes a Parquet file of synthetic interactions (integer user/item ids with gaps, float
ratings, epoch-second timestamps) to a temporary directory and times, on the same file in the
same run:

* ``recforge``: ``Dataset.from_parquet(...)`` (validation, id indices, codes) and then
  ``ds.matrix()`` (user x item CSR);
* ``pandas``: ``pd.read_parquet`` + ``pd.factorize`` of both id columns + ``scipy.sparse``
  CSR construction, with no validation at all (the floor a hand-written loader reaches).

Medians of several runs each, plus the ratio. A second case uses string user ids.

With ``--synthetic N`` it instead times ``recforge.data.synthetic`` generating N interactions
and compares its peak memory with the size of the output arrays (20 bytes per interaction):
the generator must not hold anything per interaction besides its output.

    .venv/bin/python benchmarks/bench_dataset_build.py [--rows 10000000] [--repeats 3]
    .venv/bin/python benchmarks/bench_dataset_build.py --synthetic 20000000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, markdown_table, measure
from recforge.data import Dataset


def write_file(path: Path, n: int, *, string_users: bool, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = max(n // 40, 10), max(n // 150, 10)
    # ids with gaps, as database keys after deletions
    user_ids = np.sort(rng.choice(3 * n_users, n_users, replace=False)).astype(np.int64)
    item_ids = np.sort(rng.choice(2 * n_items, n_items, replace=False)).astype(np.int64)
    users = user_ids[rng.integers(0, n_users, n)]
    items = item_ids[np.minimum(rng.zipf(1.3, n) - 1, n_items - 1)]
    columns: dict[str, pa.Array] = {
        "user_id": pa.array(np.char.add("u", users.astype(str)) if string_users else users),
        "item_id": pa.array(items),
        "rating": pa.array((rng.integers(1, 11, n) / 2).astype(np.float32)),
        "ts": pa.array(rng.integers(1_000_000_000, 1_700_000_000, n)),
    }
    pq.write_table(pa.table(columns), path, row_group_size=1 << 20)


def recforge_build(path: Path) -> sp.csr_array:
    ds = Dataset.from_parquet(path, user="user_id", item="item_id", value="rating", time="ts")
    return ds.matrix()


def pandas_build(path: Path) -> sp.csr_array:
    df = pd.read_parquet(path, columns=["user_id", "item_id", "rating", "ts"])
    u, users = pd.factorize(df["user_id"])
    i, items = pd.factorize(df["item_id"])
    m = sp.csr_array((df["rating"].to_numpy(np.float32), (u, i)), shape=(len(users), len(items)))
    m.sum_duplicates()
    return m


def bench_synthetic(n: int, repeats: int) -> None:
    from recforge.data import synthetic

    n_users, n_items = max(n // 50, 10), max(n // 500, 10)
    synthetic(100, 50, 1000)  # compile outside the timing
    m = measure(lambda: synthetic(n_users, n_items, n, rng=0), repeats=repeats)
    output_mb = n * 20 / 2**20
    row = {
        "interactions": f"{n:,}",
        "users": f"{n_users:,}",
        "items": f"{n_items:,}",
        "seconds (median)": round(m.median_s, 2),
        "runs": " ".join(f"{t:.2f}" for t in m.times_s),
        "M interactions / s": round(n / m.median_s / 1e6, 2),
        "output MB": round(output_mb, 0),
        "peak RSS increase MB": round(m.peak_mb, 0),
        "peak / output": round(m.peak_mb / output_mb, 2),
    }
    print(environment())
    print(markdown_table([row]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.synthetic:
        bench_synthetic(args.synthetic, args.repeats)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for string_users in (False, True):
            path = Path(tmp) / f"ratings-{'str' if string_users else 'int'}.parquet"
            write_file(path, args.rows, string_users=string_users)
            size_mb = path.stat().st_size / 2**20
            ours = measure(lambda p=path: recforge_build(p), repeats=args.repeats, warmup=1)
            peer = measure(lambda p=path: pandas_build(p), repeats=args.repeats, warmup=1)
            assert ours.result.nnz == peer.result.nnz, "the two builds disagree"
            assert np.isclose(ours.result.sum(), peer.result.sum(), rtol=1e-4)
            rows.append(
                {
                    "ids": "string users" if string_users else "integer",
                    "rows": f"{args.rows:,}",
                    "file MB": round(size_mb, 1),
                    "recforge s (median)": round(ours.median_s, 2),
                    "pandas-only s (median)": round(peer.median_s, 2),
                    "recforge / pandas": round(ours.median_s / peer.median_s, 2),
                    "recforge runs": " ".join(f"{t:.2f}" for t in ours.times_s),
                    "pandas runs": " ".join(f"{t:.2f}" for t in peer.times_s),
                    "recforge peak MB": round(ours.peak_mb, 0),
                    "pandas peak MB": round(peer.peak_mb, 0),
                }
            )
            print(rows[-1], flush=True)
    print()
    print(environment())
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
