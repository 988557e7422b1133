"""Candidate pairs from shared buckets, verified by the exact Jaccard of their shingle sets (steps 5 and 6)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from ptdata.silver.dedup.lsh import NO_BUCKET

# candidate_pairs links each bucket member to at most this many earliest members and this many predecessors.
BUCKET_LINKS = 16


def order_columns(df: pl.DataFrame) -> list[str]:
    return ["date", "record_id"] if "date" in df.columns else ["record_id"]


def candidate_pairs(keys_df: pl.DataFrame, links: int = BUCKET_LINKS) -> pl.DataFrame:
    """Pairs of records that share a (band, key) bucket, as columns a, b with a before b in (date, record_id)
    order, unique and sorted.

    A bucket of m members would give m(m-1)/2 pairs; one of boilerplate can hold thousands. So with its members
    in (date, record_id) order, each member is linked to the first `links` members (the likely survivors) and to
    its `links` predecessors (the chain that keeps a component connected when the first ones are different
    texts). A bucket of up to links + 1 members gives all its pairs; a larger one at most 2·links per member,
    so the work is linear in the number of keys."""
    order = order_columns(keys_df)
    # keys seen more than once; the key alone suffices here (the band is mixed into it) and costs a third of the
    # memory of a window over (band, key); buckets are still told apart by (band, key) below
    shared = keys_df.filter((pl.col("key") != NO_BUCKET) & pl.col("key").is_duplicated())
    # records numbered in (date, record_id) order, so that the rest works on integers
    records = shared.select(order).unique().sort(order).with_row_index("rank")
    df = shared.join(records, on=order).select("band", "key", "rank").sort("band", "key", "rank")
    if df.height == 0:
        return pl.DataFrame(schema={"a": pl.String, "b": pl.String})
    band, key, member = df["band"].to_numpy(), df["key"].to_numpy(), df["rank"].to_numpy()
    new_bucket = np.ones(df.height, dtype=bool)
    new_bucket[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
    first = np.flatnonzero(new_bucket)
    start = np.repeat(first, np.diff(np.append(first, df.height)))
    pos = np.arange(df.height)
    rank = pos - start
    left, right = [], []
    for k in range(links):
        # the k-th member of the bucket, for every member after it
        sel = rank > k
        left.append(start[sel] + k)
        right.append(pos[sel])
    for d in range(1, links + 1):
        # the d-th predecessor, where it is not already one of the first `links` members
        sel = rank - d >= links
        left.append(pos[sel] - d)
        right.append(pos[sel])
    pairs = pl.DataFrame({"a": member[np.concatenate(left)], "b": member[np.concatenate(right)]}).unique()
    ids = records["record_id"]
    return pl.DataFrame({"a": ids.gather(pairs["a"]), "b": ids.gather(pairs["b"])}).sort("a", "b")


def verify_pairs(
    pairs: pl.DataFrame,
    shingles_of: Mapping[str, np.ndarray] | Callable[[str], np.ndarray],
    threshold: float,
    chunk_elements: int = 1 << 18,
) -> pl.DataFrame:
    """The pairs (columns a, b, ...) whose exact Jaccard similarity is at least `threshold`, with a `jaccard`
    column. `shingles_of` gives each record's shingles as an array of distinct hashes (`shingles`, or
    `np.unique` of an `ngram_hashes` entry).

    The intersections are counted by an equi-join on (pair, shingle) in Polars, a chunk of pairs at a time
    (at most `chunk_elements` shingles per side), rather than one set intersection per pair in Python."""
    get = shingles_of.__getitem__ if isinstance(shingles_of, Mapping) else shingles_of
    ids = pl.concat([pairs["a"], pairs["b"]]).unique(maintain_order=True).to_list()
    sets = {rid: get(rid) for rid in ids}
    a_sets = [sets[r] for r in pairs["a"].to_list()]
    b_sets = [sets[r] for r in pairs["b"].to_list()]
    a_len = np.fromiter(map(len, a_sets), dtype=np.int64, count=len(a_sets))
    b_len = np.fromiter(map(len, b_sets), dtype=np.int64, count=len(b_sets))
    inter = np.zeros(len(a_sets), dtype=np.int64)
    lo = 0
    sizes = np.cumsum(np.maximum(a_len, b_len))
    while lo < len(a_sets):
        hi = max(int(np.searchsorted(sizes, (sizes[lo - 1] if lo else 0) + chunk_elements, side="right")), lo + 1)
        pid = np.arange(lo, hi)
        left = pl.DataFrame({"p": np.repeat(pid, a_len[lo:hi]), "h": _concat(a_sets[lo:hi])})
        right = pl.DataFrame({"p": np.repeat(pid, b_len[lo:hi]), "h": _concat(b_sets[lo:hi])})
        counts = left.join(right, on=["p", "h"]).group_by("p").len()
        inter[counts["p"].to_numpy()] = counts["len"].to_numpy()
        lo = hi
    union = a_len + b_len - inter
    jaccard = np.divide(inter, union, out=np.zeros(len(inter)), where=union > 0)
    return pairs.with_columns(jaccard=pl.Series(jaccard, dtype=pl.Float64)).filter(pl.col("jaccard") >= threshold)


def _concat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.uint64)
