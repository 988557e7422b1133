"""Exact and near deduplication: shingles, MinHash signatures, LSH band keys, verified clusters. Pure: no I/O.

The near-dup path, and why each step is shaped the way it is:

1. Key text (`normalize.dedup_key_text`: NFKC, casefold, punctuation → space, whitespace collapsed), so that
   re-spacing, case and punctuation never hide a duplicate.
2. Shingles: the word n-grams of the key text, each hashed to 64 bits. A word is hashed once with xxh3_64 and
   an n-gram's hash is a fold of its words' hashes through the murmur3 64-bit finalizer (`window_hashes`),
   computed with numpy for every n-gram of a whole batch at once. Hashing every n-gram string with xxh3 calls
   into Python once per n-gram: 2× slower for 5-grams (2.3 s against 1.1 s on the benchmark's 100k documents),
   and decontamination, which needs every size from 1 to 13 words at every position, would pay that per size
   while the fold yields all sizes in one pass. The fold keeps 64-bit quality (the finalizer is a bijection, so
   two n-grams collide only if their word hashes do, or with probability ~2^-64). The hash is
   defined here, not by a library, because `dedup_signatures` persists what it produces: a library upgrade
   must never change it silently. Decontamination (`decontam.py`) uses the same n-gram hash.
3. MinHash: `num_perm` affine permutations h_i(x) = a_i·x + b_i mod 2^32 (a_i odd: a bijection) of the
   shingles folded to 32 bits, evaluated for all permutations and all shingles of a chunk in one numpy step,
   then a per-document `minimum.reduceat`. This is datasketch 2's own "affine32" scheme; the shingles are
   already uniform 64-bit hashes, so no premix is needed. 32-bit lanes are 2.5× faster than 64-bit ones (AVX2
   has no 64-bit multiply) and halve the memory; a 32-bit fold only inflates estimates for sets of ~10^8
   shingles. The coefficients come from xxh3 of (seed, i), so signatures do not depend on numpy's random
   streams either.
4. Band keys: `bands` × `rows` chosen by `lsh_bands` (see there: recall at the threshold, because step 6 removes
   false candidates exactly), one 64-bit key per band with the band index mixed in, so a key alone names a
   bucket and `dedup_signatures` can be joined on it.
5. Candidates: records sharing a bucket, linked with a per-member cap so a huge bucket stays linear.
6. Verification: the exact Jaccard of the two shingle sets; only pairs at or above the threshold count.
7. Clusters: union-find over the verified pairs; the survivor of a component is its minimal (date, record_id),
   so the result depends only on the set of records and pairs, never on their order (ARCHITECTURE.md, principle 5).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import xxhash
from scipy.integrate import quad

from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.normalize import dedup_key_text

# 64-bit mixing constants: the golden-ratio multiplier and the murmur3 fmix64 multipliers.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S32 = np.uint64(32)

# The signature of a document without shingles. No real document reaches it (all of its num_perm minima would
# have to be 2^32 - 1), and band_keys gives it no bucket, so empty documents never become candidates.
EMPTY_SIGNATURE_VALUE = np.uint32(0xFFFFFFFF)
# The band key of "no bucket"; real band keys are never 0.
NO_BUCKET = np.uint64(0)

# Bytes of the (num_perm × shingles) intermediate of one MinHash step. 8 MB keeps it in cache-friendly pieces
# (measured on 100k documents: 4-8 MB chunks are fastest, 16 MB 30% and 64 MB 3× slower) and bounds memory
# whatever the batch size.
_SIGNATURE_CHUNK_BYTES = 8 << 20
# Words per chunk of the n-gram hashing, for the same reason (a few uint64 temporaries of this length).
_WORD_CHUNK = 1 << 20

# A pair at exactly the threshold may be missed by LSH with at most this probability (see lsh_bands).
MAX_MISS = 0.005
# candidate_pairs links each bucket member to at most this many earliest members and this many predecessors.
BUCKET_LINKS = 16


def _fmix64(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finalizer, in place: a bijection that spreads every input bit over the output."""
    x ^= x >> _S33
    x *= _FMIX1
    x ^= x >> _S33
    x *= _FMIX2
    x ^= x >> _S33
    return x


# ------------------------------------------------------------------------------------------------ n-gram hashes


def word_hashes(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """xxh3_64 of every word of every key text, concatenated, and the number of words of each text.

    `keys` are key texts (`dedup_key_text`), whose words are separated by single spaces."""
    # one join and one split for the whole batch: the per-text loop is only the C-speed count
    counts = np.fromiter((k.count(" ") + 1 if k else 0 for k in keys), dtype=np.int64, count=len(keys))
    words = " ".join(keys).encode().split()
    if len(words) != counts.sum():
        raise ValueError("word_hashes takes key texts (dedup_key_text): words separated by single spaces")
    hashes = np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))
    return hashes, counts


def window_hashes(hashes: np.ndarray, lengths: Sequence[int]) -> dict[int, np.ndarray]:
    """For each k in `lengths`, the hash of every run of k consecutive words: element p is the hash of words
    p..p+k-1 of `hashes` (runs past the end read zero padding; callers keep only runs inside one document).

    H(w1) = xxh3(w1) and H(w1..wk) = fmix64(H(w1..wk-1)·φ + xxh3(wk)): order-sensitive, and the hash of a k-word
    text is the same whether it is a whole short text or a run inside a longer one."""
    longest = max(lengths)
    padded = np.concatenate([hashes, np.zeros(longest - 1, dtype=np.uint64)])
    m = hashes.size
    acc = padded[:m].copy()
    out = {1: acc.copy()} if 1 in lengths else {}
    for k in range(2, longest + 1):
        acc *= _GOLDEN
        acc += padded[k - 1 : k - 1 + m]
        _fmix64(acc)
        if k in lengths:
            out[k] = acc.copy()
    return out


def _doc_chunks(counts: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive document ranges of about _WORD_CHUNK words each (a longer document is a chunk alone)."""
    ends = np.cumsum(counts)
    bounds, start = [], 0
    while start < len(counts):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + _WORD_CHUNK, side="right")), start + 1)
        bounds.append((start, stop))
        start = stop
    return bounds


def ngram_hashes(texts: Sequence[str], n: int) -> list[np.ndarray]:
    """The shingle hashes of each text, in text order and with repeats (what MinHash needs): the hashes of the
    key text's word n-grams; a text with fewer than n words gives one hash of its whole key text, an empty text
    none. `shingles` is the sorted set of the same hashes."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out: list[np.ndarray] = []
    keys = [dedup_key_text(t) for t in texts]
    for lo, hi in _doc_chunks(np.array([k.count(" ") + 1 if k else 0 for k in keys], dtype=np.int64)):
        hashes, counts = word_hashes(keys[lo:hi])
        starts = np.cumsum(counts) - counts
        runs = window_hashes(hashes, {n, *counts[(counts > 0) & (counts < n)].tolist()}) if hashes.size else {}
        for start, count in zip(starts.tolist(), counts.tolist(), strict=True):
            if count >= n:
                out.append(runs[n][start : start + count - n + 1])
            elif count:
                # a copy: a view would keep this chunk's whole array of count-word runs alive
                out.append(runs[count][start : start + 1].copy())
            else:
                out.append(np.empty(0, dtype=np.uint64))
    return out


def shingles(text: str, n: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the word n-grams of the key text of `text` (one hash of the whole key text
    when it has fewer than n words; empty for an empty text)."""
    return np.unique(ngram_hashes([text], n)[0])


# ------------------------------------------------------------------------------------------------ LSH parameters


def _false_positive_probability(threshold: float, b: int, r: int) -> float:
    # the same integrand and integrator as datasketch.lsh, so that optimal_bands agrees with it exactly
    a, _err = quad(lambda s: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)
    return a


def _false_negative_probability(threshold: float, b: int, r: int) -> float:
    a, _err = quad(lambda s: 1 - (1 - (1 - s ** float(r)) ** float(b)), threshold, 1.0)
    return a


@functools.cache
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising fp_weight·P(false positive) + fn_weight·P(false negative), each integrated over
    Jaccard similarity below and above the threshold: datasketch's `_optimal_param`, same loop, same result."""
    min_error = float("inf")
    opt = (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _false_positive_probability(threshold, b, r)
            fn = _false_negative_probability(threshold, b, r)
            error = fp * fp_weight + fn * fn_weight
            if error < min_error:
                min_error = error
                opt = (b, r)
    return opt


def miss_probability(jaccard: float, bands: int, rows: int) -> float:
    """Probability that two documents with this Jaccard similarity share no band (LSH never pairs them)."""
    return (1.0 - jaccard**rows) ** bands


@functools.cache
def lsh_bands(threshold: float, num_perm: int, max_miss: float = MAX_MISS) -> tuple[int, int]:
    """The (bands, rows) the pipeline uses: the fewest expected false candidates (datasketch's false-positive
    integral) among the settings that miss a pair at exactly the threshold with probability ≤ max_miss.

    datasketch's own optimum weighs misses and false candidates equally, which suits an index that is never
    verified; at 0.8 and 128 permutations it is 9 × 13, which misses 60% of pairs at J = 0.8 and 31% at 0.85.
    Here every candidate is verified by its exact Jaccard, so a false candidate costs one set intersection
    while a miss is a duplicate in the training data: at 0.8 / 128 this picks 18 × 6 (miss 0.4% at J = 0.8,
    0.05% at 0.85). Falls back to the setting with the smallest miss when no setting meets max_miss."""
    settings = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    meeting = [s for s in settings if miss_probability(threshold, *s) <= max_miss]
    if not meeting:
        return min(settings, key=lambda s: (miss_probability(threshold, *s), s))
    return min(meeting, key=lambda s: (_false_positive_probability(threshold, *s), s))


# ------------------------------------------------------------------------------------------------ MinHash


@functools.cache
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Affine coefficients (a odd, b any), as (num_perm, 1) columns, from xxh3 so every numpy version agrees."""
    a = [(xxhash.xxh3_64_intdigest(f"minhash-a:{seed}:{i}".encode()) & 0xFFFFFFFF) | 1 for i in range(num_perm)]
    b = [xxhash.xxh3_64_intdigest(f"minhash-b:{seed}:{i}".encode()) & 0xFFFFFFFF for i in range(num_perm)]
    return np.array(a, dtype=np.uint32)[:, None], np.array(b, dtype=np.uint32)[:, None]


def minhash_signatures(shingle_arrays: Sequence[np.ndarray], num_perm: int, seed: int = 1) -> np.ndarray:
    """MinHash signatures, (N, num_perm) uint32: for each document and permutation i, the minimum over its
    shingles x of a_i·fold(x) + b_i mod 2^32, fold(x) = (x xor x >> 32) mod 2^32. A document without shingles
    gets EMPTY_SIGNATURE_VALUE everywhere.

    Vectorized over the concatenated shingles of all documents, cut into chunks of at most 8 MB of
    intermediate regardless of document boundaries (a long document spans chunks; its minima are combined).
    The layout is (permutation, shingle) because `minimum.reduceat` along the contiguous axis is ~5× faster."""
    n_docs = len(shingle_arrays)
    a, b = _permutations(num_perm, seed)
    lengths = np.fromiter((len(x) for x in shingle_arrays), dtype=np.int64, count=n_docs)
    nonempty = np.flatnonzero(lengths)
    mins = np.full((num_perm, nonempty.size), EMPTY_SIGNATURE_VALUE, dtype=np.uint32)
    if nonempty.size:
        values = np.concatenate([np.asarray(shingle_arrays[i], dtype=np.uint64) for i in nonempty.tolist()])
        values = (values ^ (values >> _S32)).astype(np.uint32)
        ends = np.cumsum(lengths[nonempty])
        starts = ends - lengths[nonempty]
        chunk = max(1, _SIGNATURE_CHUNK_BYTES // (4 * num_perm))
        buf = np.empty((num_perm, min(chunk, values.size)), dtype=np.uint32)
        for lo in range(0, values.size, chunk):
            hi = min(lo + chunk, values.size)
            part = buf[:, : hi - lo]
            np.multiply(a, values[None, lo:hi], out=part)
            part += b
            # the documents overlapping [lo, hi): the first whose end is past lo up to the last starting before hi
            d0 = int(np.searchsorted(ends, lo, side="right"))
            d1 = int(np.searchsorted(starts, hi, side="left"))
            reduced = np.minimum.reduceat(part, np.maximum(starts[d0:d1], lo) - lo, axis=1)
            np.minimum(mins[:, d0:d1], reduced, out=mins[:, d0:d1])
    out = np.full((n_docs, num_perm), EMPTY_SIGNATURE_VALUE, dtype=np.uint32)
    out[nonempty] = mins.T
    return out


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per band, (N, bands) uint64: the band's `rows` signature values folded through fmix64,
    starting from a per-band constant so equal values in different bands give different keys. Documents with
    the empty signature get NO_BUCKET in every band; every other key is nonzero."""
    n_docs, num_perm = signatures.shape
    if bands * rows > num_perm:
        raise ValueError(f"bands × rows = {bands} × {rows} exceeds the {num_perm} permutations of the signatures")
    sig = signatures[:, : bands * rows].astype(np.uint64)
    acc = np.tile(_fmix64(np.arange(1, bands + 1, dtype=np.uint64) * _GOLDEN), (n_docs, 1))
    for c in range(rows):
        # column c of every band at once: band j's row c is signature column j·rows + c
        acc *= _GOLDEN
        acc += sig[:, c::rows]
        _fmix64(acc)
    acc[acc == NO_BUCKET] = 1
    acc[(signatures == EMPTY_SIGNATURE_VALUE).all(axis=1)] = NO_BUCKET
    return acc


def band_key_frame(record_ids: Sequence[str], keys: np.ndarray, dates: Sequence[Any] | None = None) -> pl.DataFrame:
    """The long form candidate_pairs reads: one row per (record, band) with record_id, band, key (and date)."""
    n_docs, bands = keys.shape
    frame = {
        "record_id": pl.Series(record_ids, dtype=pl.String).gather(np.repeat(np.arange(n_docs), bands)),
        "band": np.tile(np.arange(bands, dtype=np.int16), n_docs),
        "key": keys.reshape(-1),
    }
    if dates is not None:
        frame["date"] = pl.Series(dates).gather(np.repeat(np.arange(n_docs), bands))
    return pl.DataFrame(frame)


# ------------------------------------------------------------------------------------------------ candidates


def _order_columns(df: pl.DataFrame) -> list[str]:
    return ["date", "record_id"] if "date" in df.columns else ["record_id"]


def candidate_pairs(keys_df: pl.DataFrame, links: int = BUCKET_LINKS) -> pl.DataFrame:
    """Pairs of records that share a (band, key) bucket, as columns a, b with a before b in (date, record_id)
    order, unique and sorted.

    A bucket of m members would give m(m-1)/2 pairs; one of boilerplate can hold thousands. So with its members
    in (date, record_id) order, each member is linked to the first `links` members (the likely survivors) and to
    its `links` predecessors (the chain that keeps a component connected when the first ones are different
    texts). A bucket of up to links + 1 members gives all its pairs; a larger one at most 2·links per member,
    so the work is linear in the number of keys."""
    order = _order_columns(keys_df)
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


# ------------------------------------------------------------------------------------------------ clusters


def clusters(pairs: pl.DataFrame, order_key: pl.DataFrame) -> pl.DataFrame:
    """Connected components of the pairs (columns a, b): every record in a pair, with `survivor`, the minimal
    (date, record_id) of its component (`order_key` has record_id and, when ordering by date, date).

    Union-find, vectorized: records are numbered in survivor order, every union hooks the larger root under the
    smaller one, and paths are compressed by pointer jumping until each edge joins two equal roots. Roots are
    therefore component minima, and the result depends only on the sets of records and pairs."""
    order = _order_columns(order_key)
    nodes = (
        pl.concat([pairs.select(record_id="a"), pairs.select(record_id="b")])
        .unique()
        .join(order_key.select(order), on="record_id", how="left")
    )
    if "date" in order and nodes["date"].null_count():
        missing = nodes.filter(pl.col("date").is_null())["record_id"].head(3).to_list()
        raise ValueError(f"order_key has no date for records {missing}")
    nodes = nodes.sort(order).with_row_index("i")
    index = nodes.select("record_id", pl.col("i").cast(pl.Int64))
    ia, ib = (
        pairs.select(record_id=side).join(index, on="record_id", how="left", maintain_order="left")["i"].to_numpy()
        for side in ("a", "b")
    )
    parent = np.arange(nodes.height)
    while True:
        ra, rb = parent[ia], parent[ib]
        differ = ra != rb
        if not differ.any():
            break
        np.minimum.at(parent, np.maximum(ra[differ], rb[differ]), np.minimum(ra[differ], rb[differ]))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    ids = nodes["record_id"]
    return pl.DataFrame({"record_id": ids, "survivor": ids.gather(parent)}).sort("record_id")


def exact_duplicates(records: pl.DataFrame, hash_col: str = "content_hash") -> pl.DataFrame:
    """Records whose `hash_col` equals an earlier record's, as record_id → dup_of (the earliest (date, record_id)
    with that hash). Records with a null hash are never duplicates."""
    order = _order_columns(records)
    return (
        records.filter(pl.col(hash_col).is_not_null())
        .sort([hash_col, *order])
        .with_columns(dup_of=pl.col("record_id").first().over(hash_col))
        .filter(pl.col("record_id") != pl.col("dup_of"))
        .select("record_id", "dup_of")
        .sort("record_id")
    )


# ------------------------------------------------------------------------------------------------ resolve


def resolve_duplicates(
    day: pl.DataFrame,
    reps: pl.DataFrame,
    shared_keys: pl.DataFrame,
    shingles_of: Callable[[list[str]], Mapping[str, np.ndarray]],
    threshold: float,
    links: int = BUCKET_LINKS,
) -> tuple[pl.DataFrame, int, int]:
    """Which of a partition's records are duplicates, and of which kept record, over every partition up to it.

    Only eligible records take part (they passed the quality rules and are not contaminated); the caller
    rejects the others first.
    - `day`: record_id, exact_key of the partition's eligible records.
    - `reps`: exact_key, rep_id: the earliest eligible (date, record_id) with each of the day's exact keys, over
      every partition up to the day's (the day's own records included).
    - `shared_keys`: record_id, date, band, key: the band keys that two or more eligible exact representatives
      up to the day share (a key nobody shares gives no candidate).
    - `shingles_of(ids)`: the distinct shingle hashes of each record asked for.

    A representative's near-dup cluster is its connected component in the graph of verified pairs (exact
    Jaccard ≥ threshold) over every representative up to the day, and its survivor the component's minimal
    (date, record_id). Only the candidate components that hold one of the day's representatives are verified,
    which is exact: a verified component lies inside a candidate component. Candidate pairs among records up to
    a date are the same whether computed then or later (buckets are ordered by (date, record_id) and later
    members only link back), so a survivor stays the minimum of its component in its own partition: it is
    kept there, and `dup_of` always names a kept record.

    Returns record_id, reason (exact_dup, near_dup, or null for a kept record), dup_of, detail for every row of
    `day`, sorted by record_id; and the number of candidate and verified pairs in the components looked at.
    """
    day = day.join(reps, on="exact_key", how="left")
    if day["rep_id"].null_count():
        missing = day.filter(pl.col("rep_id").is_null())["record_id"].head(3).to_list()
        raise ValueError(f"no exact-key representative for records {missing}")
    survivors = pl.DataFrame(schema={"record_id": pl.String, "survivor": pl.String})
    partner = pl.DataFrame(schema={"record_id": pl.String, "partner": pl.String, "jaccard": pl.Float64})
    candidates = verified_count = 0
    pairs = candidate_pairs(shared_keys, links)
    if pairs.height:
        order_key = shared_keys.select("record_id", "date").unique()
        component = clusters(pairs, order_key)
        wanted = component.join(day.select(record_id="rep_id").unique(), on="record_id", how="semi")
        members = component.join(wanted.select("survivor").unique(), on="survivor", how="semi")["record_id"]
        edges = pairs.filter(pl.col("a").is_in(members.implode()))
        candidates = edges.height
        verified = verify_pairs(edges, shingles_of(members.to_list()), threshold)
        verified_count = verified.height
        if verified.height:
            survivors = clusters(verified, order_key)
            both = pl.concat(
                [
                    verified.select(record_id="b", partner="a", jaccard="jaccard"),
                    verified.select(record_id="a", partner="b", jaccard="jaccard"),
                ]
            )
            partner = both.sort(["record_id", "jaccard", "partner"], descending=[False, True, False]).unique(
                "record_id", keep="first"
            )
    rep_survivor = (
        day.select("rep_id")
        .unique()
        .join(survivors.rename({"record_id": "rep_id"}), on="rep_id", how="left")
        .with_columns(survivor=pl.coalesce("survivor", "rep_id"))
    )
    out = day.join(rep_survivor, on="rep_id", how="left").join(partner, on="record_id", how="left")
    is_exact = pl.col("record_id") != pl.col("rep_id")
    is_near = pl.col("record_id") != pl.col("survivor")
    return (
        out.select(
            "record_id",
            reason=pl.when(is_exact).then(pl.lit("exact_dup")).when(is_near).then(pl.lit("near_dup")),
            dup_of=pl.when(is_exact | is_near).then(pl.col("survivor")),
            detail=pl.when(is_exact)
            .then(pl.format("same normalized content as {}", "rep_id"))
            .when(is_near)
            .then(pl.format("jaccard {} with {}", pl.col("jaccard").round(3), "partner")),
        ).sort("record_id"),
        candidates,
        verified_count,
    )


# ------------------------------------------------------------------------------------------------ dedup text


def dedup_text(regime: str, record: Mapping[str, Any], fields: Sequence[str] | None = None) -> str:
    """The text a record is deduplicated on: its `fields` (the regime's dedup_fields when None) joined by newlines;
    a message list becomes one "role: content" line per turn, so the same words in another role are not equal."""
    if fields is None:
        fields = regime_spec(regime).dedup_fields
    parts: list[str] = []
    for name in fields:
        if name not in record:
            raise ValueError(f"dedup field {name!r} is not a column of {regime} records")
        value = record[name]
        if value is None:
            continue
        if isinstance(value, str):
            parts.append(value)
        else:
            parts.extend(f"{m['role']}: {m['content'] or ''}" for m in value)
    return "\n".join(parts)
