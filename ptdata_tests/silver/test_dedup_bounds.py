"""The Jaccard bounds that let verification skip false candidates: never below the exact Jaccard, so verify_pairs
keeps exactly the pairs at or above the threshold."""

from __future__ import annotations

import numpy as np
import polars as pl

from ptdata.silver import dedup as d
from ptdata.silver.dedup.candidates import jaccard_bounds


def _random_pairs(rng: np.random.Generator, n: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Sets of 0-400 hashes, pairs of them overlapping from not at all to entirely."""
    sets: list[np.ndarray] = []
    for _ in range(n):
        base = rng.integers(0, 2**64, size=int(rng.integers(0, 400)), dtype=np.uint64)
        keep = rng.random(base.size) < rng.random()
        extra = rng.integers(0, 2**64, size=int(rng.integers(0, 60)), dtype=np.uint64)
        sets += [np.unique(base), np.unique(np.concatenate([base[keep], extra]))]
    a = np.arange(0, 2 * n, 2)
    return sets, a, a + 1


def test_jaccard_bounds_never_fall_below_the_exact_jaccard():
    sets, a, b = _random_pairs(np.random.default_rng(7), 3000)
    sizes = np.array([s.size for s in sets])
    bound = jaccard_bounds(sets, sizes, a, b)
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        inter = np.intersect1d(sets[x], sets[y]).size
        union = sets[x].size + sets[y].size - inter
        exact = inter / union if union else 0.0
        assert bound[i] >= exact
        # and below the length ratio, which it implies
        assert bound[i] <= (min(sets[x].size, sets[y].size) / max(sets[x].size, sets[y].size) if union else 0.0)


def test_jaccard_bounds_at_exactly_the_threshold():
    # |A| = 5, |B| = 4, B ⊂ A: J = 0.8 exactly, and the length ratio is 0.8 too
    a_set = np.array([1, 2, 3, 4, 5], dtype=np.uint64) << np.uint64(58)
    sets = [a_set, a_set[:4]]
    assert jaccard_bounds(sets, np.array([5, 4]), np.array([0]), np.array([1]))[0] >= 0.8
    pairs = pl.DataFrame({"a": ["x"], "b": ["y"]})
    assert d.verify_pairs(pairs, {"x": sets[0], "y": sets[1]}, 0.8)["jaccard"].to_list() == [0.8]


def test_verify_pairs_keeps_exactly_the_pairs_at_the_threshold():
    sets, a, b = _random_pairs(np.random.default_rng(11), 2000)
    ids = [f"r{i:05d}" for i in range(len(sets))]
    pairs = pl.DataFrame({"a": [ids[i] for i in a], "b": [ids[i] for i in b]})
    by_id = dict(zip(ids, sets, strict=True))
    for threshold in (0.3, 0.8, 0.95):
        want = []
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            inter = np.intersect1d(sets[x], sets[y]).size
            union = sets[x].size + sets[y].size - inter
            if union and inter / union >= threshold:
                want.append((ids[x], ids[y], inter / union))
        assert d.verify_pairs(pairs, by_id, threshold, chunk_elements=5000).rows() == want
