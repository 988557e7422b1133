"""Decontamination: an index of the registered eval sets' word n-grams, and the search of records in it. Pure.

Both sides are compared as key text (`normalize.dedup_key_text`: NFKC, casefold, punctuation → space,
whitespace collapsed), so re-spacing, CRLF line ends, case and punctuation never hide a copy; n-grams are hashed
with dedup's n-gram hash (`dedup.window_hashes`), and the n-gram a match reports is confirmed word by word.

The n-gram size of an item, `item_ngram`: the configured n (13, GPT-3's choice) for items of at least
n / 0.7 words, so that any contiguous 70% of the item still holds n-grams of it (a 70% copy of a 25-word item
holds 5 of its 13-grams, of a 19-word item 1). A shorter item gets the largest size its 70% still covers, but not
below 8 words, the size Tülu 3 and open-r1 decontaminate with; shorter runs are phrases ("what is the value of
the", "write a python function that returns the") that unrelated records share. So a 70% copy is caught for
every item of 12 words or more. An item of fewer than 8 words is indexed whole: a record is contaminated when
it contains the item's whole key text as a contiguous word sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from ptdata.core.catalog import EVAL_INDEX_SCHEMA
from ptdata.silver.dedup import window_hashes, word_hashes
from ptdata.silver.normalize import dedup_key_text

# See the module docstring: the share of an item a partial copy must keep to be caught, and the shortest n-gram.
PARTIAL_TENTHS = 7
MIN_NGRAM = 8

_NGRAM_META = b"ptdata.decontam.ngram"
# texts per search chunk: bounds the word-hash temporaries (one uint64 array per n-gram size in the index)
_SEARCH_CHUNK = 4096


def item_ngram(words: int, n: int) -> int:
    """The n-gram size an eval item of `words` words is indexed with (the module docstring says why)."""
    return min(n, words, max(min(MIN_NGRAM, n), PARTIAL_TENTHS * words // 10))


@dataclass(frozen=True)
class Match:
    """The eval item a text overlaps: the item with the most distinct shared n-grams (`shared`, found by hash;
    ties: the smallest (eval_set, item_id)), and the first of them in the text (`ngram`, key text, confirmed
    on its words)."""

    eval_set: str
    item_id: str
    ngram: str
    shared: int


class EvalIndex:
    """The n-grams of every eval item, one row per distinct (n-gram, item), as an Arrow table sorted by
    (ngram_len, ngram_hash, eval_set, item_id): the same items always give the same table."""

    def __init__(self, table: pa.Table, ngram: int) -> None:
        self.ngram = ngram
        # sorted here, whatever the table's origin: the search relies on it
        self.table = (
            table.cast(EVAL_INDEX_SCHEMA)
            .sort_by([(name, "ascending") for name in ("ngram_len", "ngram_hash", "eval_set", "item_id")])
            .replace_schema_metadata({_NGRAM_META: str(ngram).encode()})
        )
        self._lengths = self.table["ngram_len"].to_numpy()
        self._hashes = self.table["ngram_hash"].to_numpy()
        self._text = self.table["ngram_text"].combine_chunks()
        # each row's item as an integer numbered in (eval_set, item_id) order, so ties break on the smaller item
        items = pl.from_arrow(self.table.select(["eval_set", "item_id"]))
        self._items = items.unique().sort("eval_set", "item_id").with_row_index("code")
        self._item_code = items.join(self._items, on=["eval_set", "item_id"], maintain_order="left")["code"].to_numpy()
        # rows of each n-gram size: a slice whose hashes are sorted, for searchsorted
        sizes, first = np.unique(self._lengths, return_index=True)
        bounds = [*first.tolist(), len(self._lengths)]
        self._slices = {int(k): (bounds[i], bounds[i + 1]) for i, k in enumerate(sizes.tolist())}

    @classmethod
    def build(cls, items: Iterable[tuple[str, str, str]], ngram: int = 13) -> EvalIndex:
        """Index eval items given as (eval_set, item_id, text)."""
        items = list(items)
        keys = [dedup_key_text(text) for _, _, text in items]
        hashes, counts = word_hashes(keys)
        sizes = [item_ngram(c, ngram) for c in counts.tolist()]
        runs = window_hashes(hashes, {k for k in sizes if k}) if hashes.size else {}
        starts = (np.cumsum(counts) - counts).tolist()
        cols: dict[str, list] = {name: [] for name in EVAL_INDEX_SCHEMA.names}
        for (eval_set, item_id, _), key, start, count, k in zip(
            items, keys, starts, counts.tolist(), sizes, strict=True
        ):
            if not count:
                continue
            words = key.split(" ")
            seen: set[int] = set()
            for p, h in enumerate(runs[k][start : start + count - k + 1].tolist()):
                if h in seen:
                    continue
                seen.add(h)
                cols["ngram_hash"].append(h)
                cols["ngram_len"].append(k)
                cols["eval_set"].append(eval_set)
                cols["item_id"].append(item_id)
                cols["ngram_text"].append(" ".join(words[p : p + k]))
        return cls(pa.table(cols, schema=EVAL_INDEX_SCHEMA), ngram)

    def to_arrow(self) -> pa.Table:
        """The index as a table (EVAL_INDEX_SCHEMA, with the configured n in the schema metadata)."""
        return self.table

    @classmethod
    def from_arrow(cls, table: pa.Table) -> EvalIndex:
        """An index back from `to_arrow`'s table."""
        meta = table.schema.metadata or {}
        if _NGRAM_META not in meta:
            raise ValueError("not an eval index table: its schema metadata has no n-gram size")
        return cls(table, int(meta[_NGRAM_META]))

    def __len__(self) -> int:
        return self.table.num_rows

    def _hits(self, keys: Sequence[str]) -> tuple[pl.DataFrame, np.ndarray]:
        """Every (position, row) where a word n-gram of the texts has the hash of an index row, with the text
        (doc) and item of each; and the start of each text in the concatenated words."""
        hashes, counts = word_hashes(keys)
        doc_start = np.cumsum(counts) - counts
        empty = pl.DataFrame(schema={"pos": pl.Int64, "row": pl.Int64, "doc": pl.Int64, "item": pl.UInt32})
        if not hashes.size or not self._slices:
            return empty, doc_start
        doc_of = np.repeat(np.arange(len(keys)), counts)
        room = (doc_start + counts)[doc_of] - np.arange(hashes.size)  # words from each position to its text's end
        positions, rows = [], []
        for k, run in window_hashes(hashes, list(self._slices)).items():
            lo, hi = self._slices[k]
            table_hashes = self._hashes[lo:hi]
            pos = np.flatnonzero(room >= k)
            first = np.searchsorted(table_hashes, run[pos], side="left")
            many = np.searchsorted(table_hashes, run[pos], side="right") - first
            pos, first, many = pos[many > 0], first[many > 0] + lo, many[many > 0]
            # one hit per index row with the hash: the n-gram's rows are consecutive, one per item holding it
            positions.append(np.repeat(pos, many))
            rows.append(np.repeat(first, many) + np.arange(many.sum()) - np.repeat(np.cumsum(many) - many, many))
        if not positions:
            return empty, doc_start
        pos, row = np.concatenate(positions), np.concatenate(rows)
        hits = pl.DataFrame({"pos": pos, "row": row, "doc": doc_of[pos], "item": self._item_code[row]})
        return hits, doc_start

    def _best(self, hits: pl.DataFrame) -> pl.DataFrame:
        """Per text: the item with the most distinct shared n-grams (ties: the smaller item), and its first
        shared n-gram in text order."""
        return (
            hits.group_by("doc", "item")
            .agg(
                shared=pl.col("row").n_unique(),
                row=pl.col("row").sort_by("pos", "row").first(),
                pos=pl.col("pos").min(),
            )
            .sort(["doc", "shared", "item"], descending=[False, True, False])
            .group_by("doc", maintain_order=True)
            .first()
        )

    def _search(self, keys: Sequence[str]) -> list[Match | None]:
        hits, doc_start = self._hits(keys)
        out: list[Match | None] = [None] * len(keys)
        while hits.height:
            # the chosen n-gram is confirmed on its text. A 64-bit hash collision is dropped and its text decided
            # again from its other hits; with ~10^9 record n-grams against ~10^6 index rows a collision happens
            # about once in 10^4 such runs, so this loop almost never runs twice.
            false_hits, redo = [], []
            for doc, item, shared, row, pos in (
                self._best(hits).select("doc", "item", "shared", "row", "pos").iter_rows()
            ):
                local = pos - int(doc_start[doc])
                text = " ".join(keys[doc].split(" ")[local : local + int(self._lengths[row])])
                if text == self._text[row].as_py():
                    out[doc] = Match(*self._items.row(item)[1:], text, shared)
                else:
                    false_hits.append((pos, row))
                    redo.append(doc)
            if not false_hits:
                break
            false = pl.DataFrame(false_hits, schema={"pos": pl.Int64, "row": pl.Int64}, orient="row")
            hits = hits.filter(pl.col("doc").is_in(redo)).join(false, on=["pos", "row"], how="anti")
        return out


def find_contamination_batch(index: EvalIndex, texts: Sequence[str]) -> list[Match | None]:
    """For each text, the eval item it overlaps, or None. Vectorized per chunk of texts: every word n-gram of
    every size in the index is hashed at once and looked up by binary search in the index's sorted hashes, the
    hits are counted per (text, item) in Polars, and only the chosen n-gram of each matching text is checked
    word by word in Python."""
    out: list[Match | None] = []
    for lo in range(0, len(texts), _SEARCH_CHUNK):
        out.extend(index._search([dedup_key_text(t) for t in texts[lo : lo + _SEARCH_CHUNK]]))
    return out


def find_contamination(index: EvalIndex, text: str) -> Match | None:
    """The eval item `text` overlaps (see Match), or None."""
    return find_contamination_batch(index, [text])[0]
