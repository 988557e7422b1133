"""Tokenizers: load the configured one, or train ptdata's own byte-level BPE; encode chat segments with their
loss mask. Pure: no Dagster, no lake.

A conversation is rendered to segments (ptdata/gold/templates.py) and encoded as one string, with the loss mask
taken from the token offsets: encoding segment by segment and concatenating differs from encoding the rendered
string wherever a merge spans a boundary (llama3's header ends in "\n\n", and "\n\n" alone is one token where
"\n\nYou" is two), and the model at inference sees the rendered string. `test_tokenize.py` checks the ids
against the rendered string, and the trained tokens against the assistant text, for every template on
multi-turn data with tool calls and non-ASCII text. A record whose content holds a special token's text is
refused rather than encoded: that text would become the real token.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tokenizers import Encoding, Tokenizer, decoders, models, pre_tokenizers, trainers

# the special tokens of ptdata's own tokenizer: end of text, and those of the built-in chat templates
EOS = "<|endoftext|>"
CHAT_SPECIAL_TOKENS = (
    EOS,
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|pad|>",
)


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE with the chat special tokens, trained on `texts`. Deterministic: the same texts in the
    same order give the same tokenizer.json (training counts pairs exactly and breaks ties by the pair itself)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(CHAT_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


@dataclass(frozen=True)
class LoadedTokenizer:
    """A tokenizer with what the templates need of it: its special tokens, end of text, and an HF model folder's
    own chat template (Jinja source) when it has one."""

    tokenizer: Tokenizer
    eos: str
    bos: str | None
    chat_template: str | None

    @functools.cached_property
    def special_tokens(self) -> tuple[str, ...]:
        return tuple(t.content for t in self.tokenizer.get_added_tokens_decoder().values() if t.special)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def token_id(self, text: str) -> int:
        i = self.tokenizer.token_to_id(text)
        if i is None:
            raise ValueError(f"the tokenizer has no token {text!r}")
        return i

    def sha256(self) -> str:
        return tokenizer_hash(self.tokenizer)


def tokenizer_hash(tok: Tokenizer) -> str:
    """The SHA-256 of the tokenizer's canonical JSON: what gold partitions record they were built with."""
    return hashlib.sha256(tok.to_str().encode()).hexdigest()


def _token_text(value: object) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def load_tokenizer(path: Path) -> LoadedTokenizer:
    """A tokenizer.json, or an HF model folder (tokenizer.json plus tokenizer_config.json, whose `eos_token`,
    `bos_token` and `chat_template` are used)."""
    folder = path if path.is_dir() else None
    file = path / "tokenizer.json" if folder else path
    if not file.is_file():
        raise ValueError(f"{file}: no tokenizer.json")
    tok = Tokenizer.from_file(str(file))
    config: dict = {}
    if folder and (folder / "tokenizer_config.json").is_file():
        config = json.loads((folder / "tokenizer_config.json").read_text())
    template = config.get("chat_template")
    if isinstance(template, list):  # several named templates: the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    eos = _token_text(config.get("eos_token")) or (EOS if tok.token_to_id(EOS) is not None else None)
    if eos is None:
        raise ValueError(f"{path}: no end-of-text token (set eos_token in tokenizer_config.json)")
    return LoadedTokenizer(tok, eos, _token_text(config.get("bos_token")), template)


class Segment(NamedTuple):
    """A piece of a rendered conversation: template scaffolding or a message's content, trained or not. (A named
    tuple: templates make several per message, and a tuple is built ~5x faster than a frozen dataclass.)"""

    text: str
    trained: bool
    content: bool = False  # a message's content (see special_in_content)


def special_in_content(segments: Sequence[Segment], specials: Sequence[str]) -> str | None:
    """The first special token whose text a message content holds, if any: encoded, that text would become the
    real token (a user turn could end itself), so such a record is refused rather than encoded."""
    for s in segments:
        if s.content:
            for t in specials:
                if t in s.text:
                    return t
    return None


class _Rendered(NamedTuple):
    """A record's rendered string and its trained segments' [start, end) in characters and in UTF-8 bytes."""

    text: str
    size: int  # bytes
    chars: list[tuple[int, int]]
    bytes: list[tuple[int, int]]


def _render(segs: Sequence[Segment]) -> _Rendered:
    chars, bytes_, pos, bpos = [], [], 0, 0
    for s in segs:
        n = len(s.text)
        nb = n if s.text.isascii() else len(s.text.encode())
        if s.trained and n:
            chars.append((pos, pos + n))
            bytes_.append((bpos, bpos + nb))
        pos, bpos = pos + n, bpos + nb
    return _Rendered("".join([s.text for s in segs]), bpos, chars, bytes_)


class RenderedBatch(NamedTuple):
    """Records rendered for the byte-level path of the mask: each one's text, its size in UTF-8 bytes, its trained
    spans as rows (record, first byte, end byte), in record order, and whether a message content of it holds a
    special token's text (see special_in_content)."""

    texts: list[str]
    sizes: np.ndarray
    spans: np.ndarray
    special: np.ndarray

    def take(self, records: np.ndarray) -> RenderedBatch:
        """The batch of the given records (ascending), renumbered from 0."""
        keep = np.zeros(len(self.texts), dtype=bool)
        keep[records] = True
        spans = self.spans[keep[self.spans[:, 0]]]
        spans[:, 0] = np.searchsorted(records, spans[:, 0])
        return RenderedBatch(
            [self.texts[i] for i in records.tolist()], self.sizes[records], spans, self.special[records]
        )


def encode_segments(tok: Tokenizer, records: Sequence[Sequence[Segment]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input_ids int32, loss_mask int8) per record. Each record's segments are joined and the rendered string is
    encoded once (one batch call for all records), so the ids are exactly those of the rendered string; a token
    is trained when it starts inside a trained segment.

    Byte-level BPE without a normalizer (ptdata's own tokenizer, GPT-2's, Llama 3's) gives back the input's bytes
    in order, so each token's start is the running sum of its vocabulary entry's byte length: those tokenizers
    are encoded with `encode_batch_fast`, which tracks no offsets and is ~1.5x faster (`encode_rendered`). A
    record whose tokens do not add up to its bytes, and every other tokenizer, use the offsets of `encode_batch`
    instead."""
    rendered = [_render(segs) for segs in records]
    if token_byte_lengths(tok) is None:
        return _encode_with_offsets(tok, rendered)
    spans = [(i, a, b) for i, r in enumerate(rendered) for a, b in r.bytes]
    batch = RenderedBatch(
        [r.text for r in rendered],
        np.fromiter((r.size for r in rendered), dtype=np.int64, count=len(rendered)),
        np.asarray(spans, dtype=np.int64).reshape(-1, 3),
        np.zeros(len(rendered), dtype=bool),
    )
    return encode_rendered(tok, batch, lambda mismatched: _encode_with_offsets(tok, [rendered[i] for i in mismatched]))


def encode_rendered(
    tok: Tokenizer,
    batch: RenderedBatch,
    fallback: Callable[[list[int]], list[tuple[np.ndarray, np.ndarray]]],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`encode_segments`' byte-level path on records already rendered (a tokenizer `token_byte_lengths` knows);
    `fallback` encodes, by offsets, the records (indices) whose tokens do not add up to their bytes."""
    lengths = token_byte_lengths(tok)
    if lengths is None:
        raise ValueError("encode_rendered needs a byte-level BPE tokenizer without a normalizer")
    if not batch.texts:
        return []
    encodings = tok.encode_batch_fast(batch.texts, add_special_tokens=False)
    ids, tok_off = _flat_ids(encodings)
    # the whole batch at once: each token's start in bytes from the batch's first byte, each record's first
    # byte (from its tokens, so one record whose tokens do not add up to its bytes moves no other record)
    widths = lengths[ids]
    starts = np.cumsum(widths) - widths
    first_byte = np.r_[starts, starts[-1] + widths[-1] if len(ids) else 0][tok_off]
    fits = np.diff(first_byte) == batch.sizes
    # a token is trained when it starts inside a trained span: +1 at a span's first token, -1 after its last
    rec, a, b = batch.spans[fits[batch.spans[:, 0]]].T
    edges = np.zeros(len(ids) + 1, dtype=np.int32)
    np.add.at(edges, np.searchsorted(starts, first_byte[rec] + a), 1)
    np.add.at(edges, np.searchsorted(starts, first_byte[rec] + b), -1)
    mask = (np.cumsum(edges[:-1]) > 0).astype(np.int8)
    out = list(zip(np.split(ids, tok_off[1:-1]), np.split(mask, tok_off[1:-1]), strict=True))
    mismatched = np.flatnonzero(~fits).tolist()
    if mismatched:
        for i, encoded in zip(mismatched, fallback(mismatched), strict=True):
            out[i] = encoded
    return out


def _flat_ids(encodings: Sequence[Encoding]) -> tuple[np.ndarray, np.ndarray]:
    """The ids of every encoding end to end (int32), and where each encoding's start ([0, ..., total])."""
    per = [e.ids for e in encodings]
    counts = np.fromiter(map(len, per), dtype=np.int64, count=len(per))
    tok_off = np.r_[0, np.cumsum(counts)]
    return np.fromiter(itertools.chain.from_iterable(per), dtype=np.int32, count=int(tok_off[-1])), tok_off


def _encode_with_offsets(tok: Tokenizer, rendered: list[_Rendered]) -> list[tuple[np.ndarray, np.ndarray]]:
    """`encode_segments` by the token offsets of `encode_batch` (in characters): any tokenizer."""
    out = []
    for enc, r in zip(tok.encode_batch([r.text for r in rendered], add_special_tokens=False), rendered, strict=True):
        ids = np.asarray(enc.ids, dtype=np.int32)
        mask = np.zeros(len(ids), dtype=np.int8)
        for a, b in r.chars:
            # the tokens that start inside [a, b): looked up at the span's two ends only, not per token
            first = enc.char_to_token(a)
            if first is not None and enc.token_to_chars(first)[0] < a:
                first += 1  # a token that began before the span (a merge across its start) is not trained
            last = enc.char_to_token(b - 1)
            while last is not None and last + 1 < len(ids) and enc.token_to_chars(last + 1)[0] < b:
                last += 1  # a character split over several tokens (an emoji's bytes): all of them are inside
            if first is not None and last is not None and first <= last:
                mask[first : last + 1] = 1
        out.append((ids, mask))
    return out


@functools.lru_cache(maxsize=4)
def token_byte_lengths(tok: Tokenizer) -> np.ndarray | None:
    """The UTF-8 byte length of every token id, when `tok` is a byte-level BPE without a normalizer (each
    character of a vocabulary entry then stands for one byte; an added token is its own text); else None."""
    if tok.normalizer is not None or not isinstance(tok.model, models.BPE):
        return None
    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    added = {i: t.content for i, t in tok.get_added_tokens_decoder().items()}
    lengths = np.zeros(tok.get_vocab_size(with_added_tokens=True), dtype=np.int64)
    for token, i in tok.get_vocab(with_added_tokens=True).items():
        if i in added:
            lengths[i] = len(added[i].encode())
        elif set(token) <= alphabet:
            lengths[i] = len(token)
        else:
            return None
    return lengths
