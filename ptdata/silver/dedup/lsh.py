"""LSH: the bands × rows of a threshold, and one 64-bit key per band (step 4 of the near-dup path)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy.integrate import quad

from ptdata.silver.dedup.minhash import EMPTY_SIGNATURE_VALUE
from ptdata.silver.dedup.ngrams import GOLDEN, fmix64

# The band key of "no bucket"; real band keys are never 0.
NO_BUCKET = np.uint64(0)
# A pair at exactly the threshold may be missed by LSH with at most this probability (see lsh_bands).
MAX_MISS = 0.005


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


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per band, (N, bands) uint64: the band's `rows` signature values folded through fmix64,
    starting from a per-band constant so equal values in different bands give different keys. Documents with
    the empty signature get NO_BUCKET in every band; every other key is nonzero."""
    n_docs, num_perm = signatures.shape
    if bands * rows > num_perm:
        raise ValueError(f"bands × rows = {bands} × {rows} exceeds the {num_perm} permutations of the signatures")
    sig = signatures[:, : bands * rows].astype(np.uint64)
    acc = np.tile(fmix64(np.arange(1, bands + 1, dtype=np.uint64) * GOLDEN), (n_docs, 1))
    for c in range(rows):
        # column c of every band at once: band j's row c is signature column j·rows + c
        acc *= GOLDEN
        acc += sig[:, c::rows]
        fmix64(acc)
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
