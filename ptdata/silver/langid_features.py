"""py3langid's feature counts for a batch of texts at once, with numpy in place of its Python loop per byte.

py3langid (0.4) counts byte n-grams with a DFA: `visit_counts` walks the text's UTF-8 bytes one at a time
(`state = nextmove[rowbase[state] + byte]`) and counts `output[state]`, the feature the state emits, if any. The
DFA is an Aho-Corasick automaton over the model's n-grams: after any bytes its state is the node of the longest
suffix of them that is a prefix of an n-gram, and no such prefix is longer than the automaton's depth D (6 in
the 0.4 model). So the state after byte i is the DFA run from its start over bytes i-D+1..i alone, and all the
texts of a batch take those D steps together, one vectorized gather per step.

The counts come out per text in the order of the features' ids, a sort of (text, feature) keys: the scoring that
follows (ptdata.silver.langid) adds them in float64 in that order on every CPU.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from py3langid.langid import LanguageIdentifier

# bytes that never occur in UTF-8 (what `LanguageIdentifier._encode` gives for a str); one that leaves the DFA
# in its start state separates the texts of a batch
_NOT_UTF8 = (0xC0, 0xC1, *range(0xF5, 0x100))


@dataclass(frozen=True)
class FeatureCounts:
    """The features of a batch of texts: text k's are `features[offsets[k]:offsets[k + 1]]` (ids in the model's
    feature table, ascending), and `counts` how often each occurs in it."""

    offsets: np.ndarray
    features: np.ndarray
    counts: np.ndarray


def _as_numpy(table: array[int]) -> np.ndarray:
    # py3langid keeps its DFA in stdlib arrays ('H', 'I' or 'L'); numpy reads their buffers without a copy
    return np.frombuffer(table, dtype=f"u{table.itemsize}")


class FeatureCounter:
    """The DFA of a py3langid model as numpy arrays, to count the features of many texts at once."""

    def __init__(self, identifier: LanguageIdentifier) -> None:
        self._next = _as_numpy(identifier.tk_nextmove)
        self._rowbase = _as_numpy(identifier.tk_row).astype(np.int32) << 8
        # the row offset of the state each transition goes to: one gather a byte instead of two (39 MB)
        self._next_base = self._rowbase[self._next]
        self._output = np.asarray(identifier.tk_output, dtype=np.int32)
        self.n_features = int(self._output.max()) + 1
        self.depth = self._max_depth()
        self._start = int(self._rowbase[0])
        stay = [b for b in _NOT_UTF8 if self._next[self._start + b] == 0]
        if not stay:
            raise ValueError("the language model's DFA has no non-UTF-8 byte that keeps it in its start state")
        self._pad_byte = stay[0]
        self._pad = bytes([self._pad_byte]) * (self.depth - 1)

    def _max_depth(self) -> int:
        """The length of the longest byte string the DFA's states stand for: breadth first from the start state,
        a state is first reached by its own string."""
        seen = np.zeros(len(self._rowbase), dtype=bool)
        seen[0] = True
        frontier, depth = np.zeros(1, dtype=np.int32), 0
        while True:
            reached = self._next[(self._rowbase[frontier][:, None] + np.arange(256, dtype=np.int32)).ravel()]
            frontier = np.unique(reached[~seen[reached]])
            if not len(frontier):
                return depth
            seen[frontier] = True
            depth += 1

    def count(self, encoded: Sequence[bytes]) -> FeatureCounts:
        """The feature counts of each text, given as py3langid's `_encode` makes it (UTF-8 bytes)."""
        n_texts = len(encoded)
        # every text is preceded by D-1 pad bytes, which keep the DFA in its start state: the D bytes a state
        # depends on never reach into the text before
        data = np.frombuffer(self._pad + self._pad.join(encoded), dtype=np.uint8)
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n_texts) + len(self._pad)
        byte = data.astype(np.int32)
        n = len(byte)
        base = np.full(n, self._start, dtype=np.int32)
        for back in range(self.depth - 1, 0, -1):
            base[back:] = self._next_base[base[back:] + byte[: n - back]]
        feature = self._output[self._next[base + byte]]
        emitted = np.flatnonzero((feature >= 0) & (data != self._pad_byte))
        # one key per emitted feature, (text, feature), in 32 bits while they fit: the sort is most of the count
        key_type = np.int32 if n_texts * self.n_features < 2**31 else np.int64
        text = np.repeat(np.arange(n_texts, dtype=key_type), lengths)[emitted]
        keys = np.sort(text * key_type(self.n_features) + feature[emitted])
        starts = np.ones(len(keys), dtype=bool)
        np.not_equal(keys[1:], keys[:-1], out=starts[1:])
        first = np.flatnonzero(starts)
        texts, features = np.divmod(keys[first], key_type(self.n_features))
        offsets = np.searchsorted(texts, np.arange(n_texts + 1))
        return FeatureCounts(offsets, features, np.diff(first, append=len(keys)))
