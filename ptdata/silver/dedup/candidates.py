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

    Most candidates of an LSH index are false, and most of them fail one of two bounds that never drop a pair
    at the threshold (`jaccard_bounds`), from the set sizes and per-record histograms, at a few operations a
    pair. Only the rest have their intersections counted, by an equi-join on (pair, shingle) in Polars, a
    chunk of pairs at a time (at most `chunk_elements` shingles per side), rather than one set intersection
    per pair in Python."""
    get = shingles_of.__getitem__ if isinstance(shingles_of, Mapping) else shingles_of
    ids = pl.concat([pairs["a"], pairs["b"]]).unique(maintain_order=True)
    sets = [get(rid) for rid in ids.to_list()]
    row = pl.DataFrame({"id": ids, "row": np.arange(ids.len(), dtype=np.int64)})
    a_row, b_row = (
        pairs.select(id=side).join(row, on="id", how="left", maintain_order="left")["row"].to_numpy()
        for side in ("a", "b")
    )
    sizes = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
    jaccard = np.zeros(pairs.height)
    todo = np.flatnonzero(jaccard_bounds(sets, sizes, a_row, b_row) >= threshold)
    a_sets, b_sets = [sets[i] for i in a_row[todo].tolist()], [sets[i] for i in b_row[todo].tolist()]
    a_len, b_len = sizes[a_row[todo]], sizes[b_row[todo]]
    inter = np.zeros(todo.size, dtype=np.int64)
    lo = 0
    total = np.cumsum(np.maximum(a_len, b_len))
    while lo < todo.size:
        hi = max(int(np.searchsorted(total, (total[lo - 1] if lo else 0) + chunk_elements, side="right")), lo + 1)
        pid = np.arange(lo, hi)
        left = pl.DataFrame({"p": np.repeat(pid, a_len[lo:hi]), "h": _concat(a_sets[lo:hi])})
        right = pl.DataFrame({"p": np.repeat(pid, b_len[lo:hi]), "h": _concat(b_sets[lo:hi])})
        counts = left.join(right, on=["p", "h"]).group_by("p").len()
        inter[counts["p"].to_numpy()] = counts["len"].to_numpy()
        lo = hi
    union = a_len + b_len - inter
    jaccard[todo] = np.divide(inter, union, out=np.zeros(todo.size), where=union > 0)
    return pairs.with_columns(jaccard=pl.Series(jaccard, dtype=pl.Float64)).filter(pl.col("jaccard") >= threshold)


# Bins of the histograms of jaccard_bounds: more make the bound tighter (a pair's unshared shingles fall in
# different bins more often) and cost a byte or two a bin and record.
HISTOGRAM_BINS = 64
_BIN_SHIFT = np.uint64(64 - (HISTOGRAM_BINS.bit_length() - 1))


def jaccard_bounds(sets: Sequence[np.ndarray], sizes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An upper bound of the Jaccard similarity of each pair (sets[a[i]], sets[b[i]]) of distinct-hash arrays,
    computed the way verify_pairs computes the similarity, so that a pair at or above a threshold is never below
    it here: float division rounds monotonically, so x ≤ X and y ≥ Y give fl(x / y) ≤ fl(X / Y).

    The shingles are uniform hashes, so their top bits cut each set into HISTOGRAM_BINS parts of one hash range;
    two sets share no more of a range than the smaller count of the two in it, so the intersection is at most
    U = Σ min(count_A, count_B) over the bins (at most min(|A|, |B|)), and J = |A∩B| / (|A| + |B| - |A∩B|) is at
    most U / (|A| + |B| - U), below min/max. Two unrelated sets of 170 shingles meet in ~110 by this count
    (J ≤ 0.48) and a pair at J = 0.7 stays below 0.8, so the false candidates of a 0.8 threshold mostly fail
    it, without a single comparison of shingles."""
    bound = np.zeros(a.size)
    if not a.size:
        return bound
    doc = np.repeat(np.arange(len(sets), dtype=np.int64), sizes)
    bins = (_concat(list(sets)) >> _BIN_SHIFT).astype(np.int64)
    dtype = np.uint16 if sizes.max() < 1 << 16 else np.int64
    hist = np.bincount(doc * HISTOGRAM_BINS + bins, minlength=len(sets) * HISTOGRAM_BINS).astype(dtype)
    hist = hist.reshape(len(sets), HISTOGRAM_BINS)
    step = 1 << 16
    for lo in range(0, a.size, step):
        ia, ib = a[lo : lo + step], b[lo : lo + step]
        shared = np.minimum(hist[ia], hist[ib]).sum(axis=1, dtype=np.int64)
        union = sizes[ia] + sizes[ib] - shared
        np.divide(shared, union, out=bound[lo : lo + step], where=union > 0)
    return bound


def _concat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.uint64)
