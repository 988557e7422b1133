"""MinHash signatures: affine permutations of the shingles, minimum per document (step 3 of the near-dup path)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import xxhash

from ptdata.silver.dedup.ngrams import S32

# The signature of a document without shingles. No real document reaches it (all of its num_perm minima would
# have to be 2^32 - 1), and band_keys gives it no bucket, so empty documents never become candidates.
EMPTY_SIGNATURE_VALUE = np.uint32(0xFFFFFFFF)
# Bytes of the (num_perm × shingles) intermediate of one MinHash step. 8 MB keeps it in cache-friendly pieces
# (measured on 100k documents: 4-8 MB chunks are fastest, 16 MB 30% and 64 MB 3× slower) and bounds memory
# whatever the batch size.
_SIGNATURE_CHUNK_BYTES = 8 << 20


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
        values = (values ^ (values >> S32)).astype(np.uint32)
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
