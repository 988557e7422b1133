"""The vectorized shingling kernels of the near-dup path against their plain references: xxh3 of many strings, the
key texts of a batch, word hashes."""

from __future__ import annotations

import random

import numpy as np
import pytest
import xxhash

from ptdata.silver import dedup as d
from ptdata.silver.dedup.xxh3 import xxh3_64_many
from ptdata.silver.normalize import dedup_key_text, dedup_key_texts


@pytest.mark.parametrize("padded", [True, False])
def test_xxh3_many_is_xxhash_for_every_length_path(padded):
    rng = random.Random(3)
    strings = [bytes(rng.randrange(256) for _ in range(n)) for n in [*range(0, 260), 1000, 4096] for _ in range(3)]
    data = b"\x07" + b"".join(strings) + (b"\x00" * 8 if padded else b"")  # an odd offset: unaligned reads
    lengths = np.array([len(s) for s in strings])
    starts = 1 + np.cumsum(lengths) - lengths
    got = xxh3_64_many(np.frombuffer(data, dtype=np.uint8), starts, lengths)
    assert got.tolist() == [xxhash.xxh3_64_intdigest(s) for s in strings]


TRICKY = [
    "",
    " ",
    "...",
    "Hello, World!  Again.",
    "end.Start",
    "tabs\tand\nnewlines\r\nand\x0bvt\x0cff",
    "file\x1cgroup\x1drecord\x1eunit\x1fseparators",
    "$5 + 3 = <8> ^ `x` | ~y",  # ASCII symbols (category S) are not punctuation: they stay
    "\x00control\x01chars\x7f",
    "Straße ǰ ﬁne İstanbul ＡＢＣ",  # casefold and NFKC, and the fold that needs a second NFKC
    "“curly” ‘quotes’ — dashes… and\u00a0nbsp\u2028line\u2029para\x85nel",
    "日本語の文章。句読点、も！",
    "emoji 🎉🏴\U000e0067\U000e0062 mixed",
    "lone \ud800 surrogate",
]


def test_dedup_key_texts_is_dedup_key_text():
    rng = random.Random(5)
    alphabet = [chr(c) for c in range(0x3000)] + ["\U0001f600", "\ud83d", " ", " ", ".", "A"]
    texts = TRICKY + ["".join(rng.choice(alphabet) for _ in range(rng.randrange(40))) for _ in range(3000)]
    assert dedup_key_texts(texts) == [dedup_key_text(t) for t in texts]
    assert dedup_key_texts([]) == []


def test_dedup_key_texts_across_chunks(monkeypatch):
    from ptdata.silver import normalize

    monkeypatch.setattr(normalize, "_KEY_CHUNK", 16)
    assert dedup_key_texts(TRICKY * 3) == [dedup_key_text(t) for t in TRICKY * 3]


def test_word_hashes_are_xxh3_of_each_word():
    # a lone surrogate has no UTF-8 form: word hashing refuses it, as xxhash would
    keys = [dedup_key_text(t) for t in TRICKY if "\ud800" not in t] + ["a", "", "x" * 200 + " y"]
    hashes, counts = d.word_hashes(keys)
    words = [w for k in keys for w in k.encode().split()]
    assert hashes.tolist() == [xxhash.xxh3_64_intdigest(w) for w in words]
    assert counts.tolist() == [len(k.split()) for k in keys]
    for bad in (["a  b"], [" a"], ["a "], ["a\tb"], ["a\nb"]):
        with pytest.raises(ValueError, match="key texts"):
            d.word_hashes(bad)
