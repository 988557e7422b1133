"""Dedup transforms: LSH parameters, shingles, MinHash, band keys, candidates, verification, clusters, exact dups."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import polars as pl
import pytest
from datasketch.lsh import _optimal_param

from ptdata.silver import dedup as d
from ptdata.silver.dedup import minhash as minhash_module
from ptdata.silver.dedup import ngrams as ngrams_module
from ptdata.silver.normalize import dedup_key_text

PARAGRAPH = (
    "The scheduler keeps a queue of pending runs for every partition. When a sensor notices a new landing "
    "folder it submits a run request keyed by the folder's date, so a second notice of the same folder is "
    "ignored. Each run materializes bronze, then silver, then gold, and records the data version of every "
    "published partition so that a release can pin exactly what it was built from and rebuild it later."
)


def _pipeline_pairs(texts: list[str], threshold: float = 0.8) -> pl.DataFrame:
    ids = [f"r{i:03d}" for i in range(len(texts))]
    grams = d.ngram_hashes(texts, 5)
    keys = d.band_keys(d.minhash_signatures(grams, 128), *d.lsh_bands(threshold, 128))
    pairs = d.candidate_pairs(d.band_key_frame(ids, keys))
    return d.verify_pairs(pairs, {rid: np.unique(g) for rid, g in zip(ids, grams, strict=True)}, threshold)


@pytest.mark.parametrize(
    ("threshold", "num_perm", "fp", "fn"),
    [(0.8, 128, 0.5, 0.5), (0.7, 128, 0.5, 0.5), (0.9, 64, 0.5, 0.5), (0.5, 32, 0.3, 0.7), (0.8, 128, 0.001, 0.999)],
)
def test_optimal_bands_equals_datasketch(threshold, num_perm, fp, fn):
    assert d.optimal_bands(threshold, num_perm, fp, fn) == _optimal_param(threshold, num_perm, fp, fn)


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.8, 128), (0.7, 256), (0.9, 128), (0.8, 64)])
def test_lsh_bands_bounds_the_miss_at_the_threshold(threshold, num_perm):
    bands, rows = d.lsh_bands(threshold, num_perm)
    assert bands * rows <= num_perm
    assert d.miss_probability(threshold, bands, rows) <= d.MAX_MISS
    # and it is far better than datasketch's balanced optimum, which is built for unverified candidates
    assert d.miss_probability(threshold, bands, rows) < d.miss_probability(
        threshold, *d.optimal_bands(threshold, num_perm)
    )


def test_lsh_bands_for_the_default_config():
    assert d.lsh_bands(0.8, 128) == (18, 6)


def test_shingles_are_sorted_unique_hashes_of_normalized_word_ngrams():
    s = d.shingles(PARAGRAPH, 5)
    assert s.dtype == np.uint64
    assert np.all(s[1:] > s[:-1])
    words = len(dedup_key_text(PARAGRAPH).split())  # "folder's" is two key words
    assert len(s) == words - 4  # no 5-gram repeats in this paragraph
    # the key text decides: case, punctuation, spacing and line ends do not change the shingles
    messy = PARAGRAPH.upper().replace(" ", "  \r\n", 7).replace(",", " ,")
    assert np.array_equal(d.shingles(messy, 5), s)
    # word order does
    assert not np.array_equal(d.shingles("a b c d e", 5), d.shingles("e d c b a", 5))


def test_short_and_empty_texts():
    assert d.shingles("", 5).size == 0
    assert d.shingles("  ...  ", 5).size == 0  # punctuation only: an empty key text
    short = d.shingles("Three words only!", 5)
    assert short.size == 1
    # the whole short text hashes like the same three words inside a longer text
    run3 = d.window_hashes(d.word_hashes(["x three words only y"])[0], [3])[3]
    assert short[0] == run3[1]


def test_ngram_hashes_is_shingles_with_repeats_across_chunks(monkeypatch):
    monkeypatch.setattr(ngrams_module, "_WORD_CHUNK", 50)  # many chunks, and documents longer than a chunk
    texts = [PARAGRAPH, "", "tiny", PARAGRAPH + " " + PARAGRAPH, "one two three four five"]
    for text, grams in zip(texts, d.ngram_hashes(texts, 5), strict=True):
        assert np.array_equal(np.unique(grams), d.shingles(text, 5))
    assert len(d.ngram_hashes([PARAGRAPH + " " + PARAGRAPH], 5)[0]) == 2 * len(dedup_key_text(PARAGRAPH).split()) - 4


def test_signatures_are_deterministic_and_chunking_does_not_matter(monkeypatch):
    rng = np.random.default_rng(7)
    docs = [rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64) for n in (1, 300, 0, 5000, 17)]
    sig = d.minhash_signatures(docs, 128)
    assert sig.shape == (5, 128) and sig.dtype == np.uint32
    assert np.array_equal(sig, d.minhash_signatures(docs, 128))
    assert not np.array_equal(sig, d.minhash_signatures(docs, 128, seed=2))
    assert (sig[2] == d.EMPTY_SIGNATURE_VALUE).all()
    assert not (sig[[0, 1, 3, 4]] == d.EMPTY_SIGNATURE_VALUE).all(axis=1).any()
    monkeypatch.setattr(
        minhash_module, "_SIGNATURE_CHUNK_BYTES", 8 * 128 * 97
    )  # 97 shingles a chunk: documents span chunks
    assert np.array_equal(d.minhash_signatures(docs, 128), sig)
    # a permutation of a document's shingles, or repeats of them, give the same signature
    assert np.array_equal(d.minhash_signatures([rng.permutation(np.repeat(docs[1], 2))], 128)[0], sig[1])


def test_minhash_estimates_jaccard():
    rng = np.random.default_rng(0)
    errors, z = [], []
    for _ in range(200):
        size = int(rng.integers(50, 400))
        target = rng.uniform(0.05, 0.95)
        common = int(round(2 * size * target / (1 + target)))
        shared = rng.integers(0, 2**64 - 1, common, dtype=np.uint64)
        a = np.concatenate([shared, rng.integers(0, 2**64 - 1, size - common, dtype=np.uint64)])
        b = np.concatenate([shared, rng.integers(0, 2**64 - 1, size - common, dtype=np.uint64)])
        true = common / (2 * size - common)
        sig = d.minhash_signatures([a, b], 128)
        estimate = float((sig[0] == sig[1]).mean())
        errors.append(estimate - true)
        z.append((estimate - true) / np.sqrt(true * (1 - true) / 128))
    # unbiased, with the binomial spread of 128 independent permutations
    assert abs(np.mean(errors)) < 0.01
    assert np.mean(np.abs(errors)) < 0.05
    assert 0.7 < np.std(z) < 1.3


def test_band_keys():
    rng = np.random.default_rng(1)
    sig = rng.integers(0, 2**32 - 1, size=(3, 128), dtype=np.uint32)
    sig[1] = sig[0]
    sig[2] = d.EMPTY_SIGNATURE_VALUE
    keys = d.band_keys(sig, 18, 6)
    assert keys.shape == (3, 18) and keys.dtype == np.uint64
    assert np.array_equal(keys[0], keys[1])
    assert (keys[2] == d.NO_BUCKET).all() and (keys[:2] != d.NO_BUCKET).all()
    # the band index is mixed in: the same values in two bands give two keys
    same = np.tile(sig[:1, :6], (1, 2))
    k = d.band_keys(same, 2, 6)
    assert k[0, 0] != k[0, 1]
    with pytest.raises(ValueError, match="exceeds"):
        d.band_keys(sig, 22, 6)


def test_a_planted_near_duplicate_is_found_and_verified():
    words = PARAGRAPH.split()
    near = list(words)
    near[10] = "detects"  # one word changed: 5 of ~60 shingles differ, J ≈ 0.85
    unrelated = [
        "Packing puts several short sequences into one row of the context length and restarts the position ids.",
        "A verifier that cannot parse the reference answer fails loudly instead of rewarding the rollout.",
    ]
    texts = [PARAGRAPH, " ".join(near), *unrelated, ""]
    pairs = _pipeline_pairs(texts)
    assert pairs.select("a", "b").rows() == [("r000", "r001")]
    assert pairs["jaccard"][0] == pytest.approx(
        len(set(d.shingles(texts[0], 5)) & set(d.shingles(texts[1], 5)))
        / len(set(d.shingles(texts[0], 5)) | set(d.shingles(texts[1], 5)))
    )


def test_verification_rejects_a_false_candidate():
    # two records forced into one bucket, as a band collision would: only the exact Jaccard decides
    other = "Completely different words about tokenizers, chat templates and loss masks for assistant turns only."
    keys = pl.DataFrame({"record_id": ["x", "y"], "band": [0, 0], "key": [np.uint64(42)] * 2})
    pairs = d.candidate_pairs(keys)
    assert pairs.rows() == [("x", "y")]
    shingles = {"x": d.shingles(PARAGRAPH, 5), "y": d.shingles(other, 5)}
    assert d.verify_pairs(pairs, shingles, 0.8).height == 0
    assert d.verify_pairs(pairs, shingles.__getitem__, 0.0)["jaccard"].to_list() == [0.0]


def test_candidate_pairs_stay_linear_in_a_huge_bucket_and_keep_it_connected():
    n = 2000
    ids = [f"r{i:05d}" for i in range(n)]
    keys = pl.DataFrame({"record_id": ids, "band": [3] * n, "key": [np.uint64(7)] * n})
    pairs = d.candidate_pairs(keys)
    assert pairs.height <= 2 * d.BUCKET_LINKS * n
    assert (pairs["a"] < pairs["b"]).all()
    survivors = d.clusters(pairs, pl.DataFrame({"record_id": ids}))
    assert survivors["survivor"].unique().to_list() == ["r00000"]
    shuffled = keys.sample(fraction=1.0, shuffle=True, seed=3)
    assert d.candidate_pairs(shuffled).equals(pairs)
    # a small bucket gives all its pairs
    small = pl.DataFrame({"record_id": ids[:5], "band": [0] * 5, "key": [np.uint64(9)] * 5})
    assert d.candidate_pairs(small).height == 10


def test_candidate_pairs_order_members_by_date_then_record_id():
    keys = pl.DataFrame(
        {
            "record_id": ["a", "b", "c"],
            "band": [0, 0, 0],
            "key": [np.uint64(5)] * 3,
            "date": [dt.date(2026, 11, 3), dt.date(2026, 11, 1), dt.date(2026, 11, 2)],
        }
    )
    assert set(d.candidate_pairs(keys).rows()) == {("b", "c"), ("b", "a"), ("c", "a")}
    assert d.candidate_pairs(keys.with_columns(key=pl.lit(np.uint64(0)))).height == 0  # NO_BUCKET


def _components(pairs: list[tuple[str, str]], order: dict[str, tuple]) -> dict[str, str]:
    """Brute force: each record's component by repeated relaxation, the survivor its minimal order key."""
    label = {r: r for pair in pairs for r in pair}
    changed = True
    while changed:
        changed = False
        for a, b in pairs:
            low = min(label[a], label[b], key=order.__getitem__)
            for r in (a, b):
                if label[r] != low:
                    label[r], changed = low, True
    for r in label:  # relaxation leaves labels pointing at a record; resolve to the component's minimum
        seen = {x for x in label if label[x] == label[r]}
        label[r] = min(seen, key=order.__getitem__)
    return label


def test_clusters_survivor_is_the_earliest_and_order_does_not_matter():
    rng = random.Random(11)
    ids = [f"id{i:03d}" for i in range(120)]
    dates = {r: dt.date(2026, 11, 1) + dt.timedelta(days=rng.randrange(5)) for r in ids}
    pairs = [tuple(rng.sample(ids, 2)) for _ in range(90)]
    order_key = pl.DataFrame({"record_id": ids, "date": [dates[r] for r in ids]})
    expected = _components(pairs, {r: (dates[r], r) for r in ids})
    result = d.clusters(pl.DataFrame(pairs, schema=["a", "b"], orient="row"), order_key)
    assert dict(result.rows()) == expected
    for seed in range(20):
        shuffle = random.Random(seed)
        again = [(b, a) if shuffle.random() < 0.5 else (a, b) for a, b in shuffle.sample(pairs, len(pairs))]
        keys = order_key.sample(fraction=1.0, shuffle=True, seed=seed)
        assert d.clusters(pl.DataFrame(again, schema=["a", "b"], orient="row"), keys).equals(result)


def test_clusters_of_a_long_chain():
    ids = [f"c{i:05d}" for i in range(5000)]
    pairs = pl.DataFrame({"a": ids[1:], "b": ids[:-1]}).sample(fraction=1.0, shuffle=True, seed=1)
    result = d.clusters(pairs, pl.DataFrame({"record_id": list(reversed(ids))}))
    assert result["survivor"].unique().to_list() == ["c00000"]
    with pytest.raises(ValueError, match="no date"):
        d.clusters(pairs, pl.DataFrame({"record_id": ids[:10], "date": [dt.date(2026, 11, 1)] * 10}))


def test_empty_inputs():
    assert d.minhash_signatures([], 128).shape == (0, 128)
    no_pairs = d.candidate_pairs(pl.DataFrame(schema={"record_id": pl.String, "band": pl.Int16, "key": pl.UInt64}))
    assert no_pairs.height == 0 and no_pairs.columns == ["a", "b"]
    assert d.verify_pairs(no_pairs, {}, 0.8).columns == ["a", "b", "jaccard"]
    assert d.clusters(no_pairs, pl.DataFrame({"record_id": ["x"]})).height == 0


def test_exact_duplicates_keep_the_earliest():
    day = dt.date(2026, 11, 1)
    records = pl.DataFrame(
        {
            "record_id": ["r5", "r1", "r9", "r2", "r7", "r3"],
            "date": [day, day + dt.timedelta(days=1), day, day, day, day],
            "content_hash": ["h1", "h1", "h1", "h2", None, None],
        }
    )
    expected = [("r1", "r5"), ("r9", "r5")]
    assert d.exact_duplicates(records).rows() == expected
    for seed in range(5):
        assert d.exact_duplicates(records.sample(fraction=1.0, shuffle=True, seed=seed)).rows() == expected


def test_dedup_text_defaults_and_overrides():
    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert d.dedup_text("sft", {"messages": conv}) == "user: Hi\nassistant: Hello!"
    pref = {"prompt": conv[:1], "chosen": conv[1:], "rejected": [{"role": "assistant", "content": "No."}]}
    assert d.dedup_text("preference", pref) == "user: Hi\nassistant: Hello!"
    assert d.dedup_text("rlvr", {"prompt": conv[:1], "answer": "42"}) == "user: Hi"
    assert d.dedup_text("text", {"text": "plain"}) == "plain"
    assert d.dedup_text("sft", {"messages": conv}, fields=["messages"]) == d.dedup_text("sft", {"messages": conv})
    assert d.dedup_text("rlvr", {"prompt": conv[:1], "answer": "42"}, fields=["prompt", "answer"]) == "user: Hi\n42"
    with pytest.raises(ValueError, match="'chosen'"):
        d.dedup_text("sft", {"messages": conv}, fields=["chosen"])
    with pytest.raises(ValueError, match="unknown regime"):
        d.dedup_text("audio", {"text": "x"})


def _resolve_inputs(records: list[tuple[str, dt.date, str]], day: dt.date):
    """resolve_duplicates' inputs for `day` from (record_id, date, text) records, as curate.dedup_inputs builds
    them from dedup_signatures."""
    keys = {rid: dedup_key_text(text) for rid, _, text in records}
    frame = pl.DataFrame(
        {"record_id": [r for r, _, _ in records], "date": [x for _, x, _ in records], "exact_key": list(keys.values())}
    ).filter(pl.col("date") <= day)
    reps_all = frame.sort("date", "record_id").unique("exact_key", keep="first", maintain_order=True)
    today = frame.filter(pl.col("date") == day).select("record_id", "exact_key").sort("record_id")
    reps = reps_all.filter(pl.col("exact_key").is_in(today["exact_key"].implode())).select(
        "exact_key", rep_id="record_id"
    )
    ids = reps_all["record_id"].to_list()
    hashes = d.ngram_hashes([keys[r] for r in ids], 5)
    bands, rows = d.lsh_bands(0.8, 128)
    band = d.band_keys(d.minhash_signatures(hashes, 128), bands, rows)
    long = d.band_key_frame(ids, band, reps_all["date"].to_list())
    shared = long.filter((pl.col("key") != d.NO_BUCKET) & pl.col("key").is_duplicated())
    sets = {r: np.unique(h) for r, h in zip(ids, hashes, strict=True)}
    return today, reps, shared, lambda wanted: {r: sets[r] for r in wanted}


def _brute_force(records: list[tuple[str, dt.date, str]], day: dt.date) -> dict[str, tuple]:
    """Every pair's exact Jaccard, every component, over all records up to `day`: the decision of each record of
    `day` as (reason, dup_of)."""
    upto = sorted((x, r, dedup_key_text(t)) for r, x, t in records if x <= day)
    rep: dict[str, str] = {}
    for _, r, key in upto:
        rep.setdefault(key, r)
    order = {r: (x, r) for x, r, _ in upto}
    reps = sorted(set(rep.values()), key=order.__getitem__)
    sets = {r: set(d.shingles(next(k for _, q, k in upto if q == r), 5)) for r in reps}
    pairs = [
        (a, b)
        for i, a in enumerate(reps)
        for b in reps[i + 1 :]
        if sets[a] | sets[b] and len(sets[a] & sets[b]) / len(sets[a] | sets[b]) >= 0.8
    ]
    survivor = _components(pairs, order)
    out = {}
    for x, r, key in upto:
        if x != day:
            continue
        s = survivor.get(rep[key], rep[key])
        out[r] = ("exact_dup", s) if rep[key] != r else ("near_dup", s) if s != r else (None, None)
    return out


def test_resolve_duplicates_matches_brute_force_over_every_partition():
    rng = random.Random(5)
    words = PARAGRAPH.split()
    bases = [rng.sample(words, len(words)) for _ in range(6)]
    records = []
    for i in range(160):
        base = list(rng.choice(bases))
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 8])):  # exact copies, near copies, and drifted ones
            base[rng.randrange(len(base))] = rng.choice(["alpha", "beta", "gamma", "delta", "epsilon"])
        text = " ".join(base)
        records.append((f"{rng.getrandbits(64):016x}", dt.date(2026, 11, 1) + dt.timedelta(days=i % 4), text))
    for day in sorted({x for _, x, _ in records}):
        today, reps, shared, shingles_of = _resolve_inputs(records, day)
        decisions, candidates, verified = d.resolve_duplicates(today, reps, shared, shingles_of, 0.8)
        got = {r: (reason, dup_of) for r, reason, dup_of, _ in decisions.rows()}
        # the duplicates alone come back: a record not among them is kept
        assert got == {r: v for r, v in _brute_force(records, day).items() if v[0] is not None}, day
        assert candidates >= verified
        # order-independent: the same rows in any order give the same decisions
        shuffled = d.resolve_duplicates(
            today.sample(fraction=1.0, shuffle=True, seed=1),
            reps.sample(fraction=1.0, shuffle=True, seed=2),
            shared.sample(fraction=1.0, shuffle=True, seed=3),
            shingles_of,
            0.8,
        )[0]
        assert shuffled.equals(decisions)
    kinds = {reason for day in range(4) for reason, _ in _brute_force(records, dt.date(2026, 11, 1 + day)).values()}
    assert kinds == {None, "exact_dup", "near_dup"}
