"""Exact and near deduplication: shingles, MinHash signatures, LSH band keys, verified clusters. Pure: no I/O.

The near-dup path, and why each step is shaped the way it is:

The package holds one module a step: ngrams.py (1, 2), minhash.py (3), lsh.py (4), candidates.py (5, 6),
clusters.py (7), and history.py, which walks the signatures of every partition up to a day for what it can
reach.

1. Key text (`normalize.dedup_key_text`: NFKC, casefold, punctuation → space, whitespace collapsed), so that
   re-spacing, case and punctuation never hide a duplicate; a batch's key texts are folded at once
   (`normalize.dedup_key_texts`: the same strings, the punctuation and whitespace pass in numpy).
2. Shingles: the word n-grams of the key text, each hashed to 64 bits. A word is hashed once with xxh3_64 (all
   words of a batch in one numpy pass over their UTF-8 bytes, `xxh3.xxh3_64_many`, bit for bit xxhash's) and
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
6. Verification: the exact Jaccard of the two shingle sets; only pairs at or above the threshold count. Most
   candidates are false; an upper bound from set sizes and per-record histograms of the hash ranges
   (`candidates.jaccard_bounds`, never below the exact value) drops most of them before any intersection.
7. Clusters: union-find over the verified pairs; the survivor of a component is its minimal (date, record_id),
   so the result depends only on the set of records and pairs, never on their order (ARCHITECTURE.md, principle 5).
"""

from ptdata.silver.dedup.candidates import BUCKET_LINKS, candidate_pairs, verify_pairs
from ptdata.silver.dedup.clusters import clusters, exact_duplicates, resolve_duplicates
from ptdata.silver.dedup.lsh import (
    MAX_MISS,
    NO_BUCKET,
    band_key_frame,
    band_keys,
    lsh_bands,
    miss_probability,
    optimal_bands,
)
from ptdata.silver.dedup.minhash import EMPTY_SIGNATURE_VALUE, minhash_signatures
from ptdata.silver.dedup.ngrams import (
    dedup_key,
    dedup_keys,
    dedup_text,
    exact_key,
    key_ngram_hashes,
    ngram_hashes,
    shingles,
    window_hashes,
    word_hashes,
)

__all__ = [
    "BUCKET_LINKS",
    "EMPTY_SIGNATURE_VALUE",
    "MAX_MISS",
    "NO_BUCKET",
    "band_key_frame",
    "band_keys",
    "candidate_pairs",
    "clusters",
    "dedup_key",
    "dedup_keys",
    "dedup_text",
    "exact_duplicates",
    "exact_key",
    "key_ngram_hashes",
    "lsh_bands",
    "minhash_signatures",
    "miss_probability",
    "ngram_hashes",
    "optimal_bands",
    "resolve_duplicates",
    "shingles",
    "verify_pairs",
    "window_hashes",
    "word_hashes",
]
