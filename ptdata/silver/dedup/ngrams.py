"""Key text and shingles: word n-grams of the folded key text, each hashed to 64 bits (step 1 and 2 of the
near-dup path, ptdata/silver/dedup/__init__.py). Decontamination uses the same n-gram hash."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xxhash

from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.dedup.xxh3 import PADDING, xxh3_64_many
from ptdata.silver.normalize import dedup_key_text, dedup_key_texts

# 64-bit mixing constants: the golden-ratio multiplier and the murmur3 fmix64 multipliers.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
S32 = np.uint64(32)
# Words per chunk of the n-gram hashing, for the same reason (a few uint64 temporaries of this length).
_WORD_CHUNK = 1 << 20


def fmix64(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finalizer, in place: a bijection that spreads every input bit over the output."""
    x ^= x >> _S33
    x *= _FMIX1
    x ^= x >> _S33
    x *= _FMIX2
    x ^= x >> _S33
    return x


def word_hashes(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """xxh3_64 of every word of every key text, concatenated, and the number of words of each text.

    `keys` are key texts (`dedup_key_text`), whose words are separated by single spaces. The words are found and
    hashed in one UTF-8 buffer of the whole batch (`xxh3.xxh3_64_many`), never as one Python object each."""
    return _word_hashes(keys, _word_counts(keys))


def _word_counts(keys: Sequence[str]) -> np.ndarray:
    return np.fromiter((k.count(" ") + 1 if k else 0 for k in keys), dtype=np.int64, count=len(keys))


def _word_hashes(keys: Sequence[str], counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # room past the last word for xxh3's reads, so the buffer is not copied to pad it
    data = np.frombuffer((" ".join(k for k in keys if k) + " " * PADDING).encode(), dtype=np.uint8)
    n_bytes = data.size - PADDING
    spaces = np.flatnonzero(data[:n_bytes] == 32)
    starts = np.concatenate(([0], spaces + 1))
    lengths = np.concatenate((spaces, [n_bytes])) - starts
    if n_bytes == 0:
        starts, lengths = starts[:0], lengths[:0]
    text = data[:n_bytes]
    # bytes 9-13 (tab, newlines, vertical tab, form feed, carriage return) would be word breaks to bytes.split()
    if len(starts) != counts.sum() or (lengths == 0).any() or ((text >= 9) & (text <= 13)).any():
        raise ValueError("word_hashes takes key texts (dedup_key_text): words separated by single spaces")
    return xxh3_64_many(data, starts, lengths), counts


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
        acc *= GOLDEN
        acc += padded[k - 1 : k - 1 + m]
        fmix64(acc)
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
    return key_ngram_hashes(dedup_key_texts(texts), n)


def key_ngram_hashes(keys: Sequence[str], n: int) -> list[np.ndarray]:
    """`ngram_hashes` of texts already folded to key texts (`dedup_key_text`), for callers that keep the key text
    (the exact key is its hash): folding it again would only repeat the work."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out: list[np.ndarray] = []
    all_counts = _word_counts(keys)
    for lo, hi in _doc_chunks(all_counts):
        hashes, counts = _word_hashes(keys[lo:hi], all_counts[lo:hi])
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


def exact_key(key_text: str) -> str:
    """The exact-duplicate key: a hash of the dedup key text (case, punctuation and spacing folded)."""
    return xxhash.xxh3_128_hexdigest(key_text.encode("utf-8"))


def dedup_key(regime: str, prepared: dict[str, Any], fields: list[str] | None = None) -> str:
    """The key text a prepared record is deduplicated on (each regime's default: its dedup_fields)."""
    return dedup_key_text(dedup_text(regime, prepared, fields))


def dedup_keys(regime: str, prepared: Sequence[Mapping[str, Any]], fields: Sequence[str] | None = None) -> list[str]:
    """`dedup_key` of every record of a batch, with the key texts folded all at once (`dedup_key_texts`)."""
    return dedup_key_texts([dedup_text(regime, record, fields) for record in prepared])
