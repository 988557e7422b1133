"""repetition: Gopher's repetition limits (Rae et al. 2021, appendix A) on the reply, fenced code and table rows
excluded, for texts of at least `min_words` words."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Annotated

from pydantic import Field

from ptdata.silver.langid import FENCED_CODE
from ptdata.silver.quality.base import Rule

_NgramLimits = dict[Annotated[int, Field(ge=1)], Annotated[float, Field(ge=0, le=1)]]  # n → limit


class RepetitionRule(Rule):
    """Gopher's limits; a statistic above its limit fails the rule. The n-gram statistics count words
    (runs of letters and digits; each CJK character is a word) and their characters, punctuation aside."""

    # Shorter texts are not judged. Gopher's limits were set on web documents; in a 100-word reply a single
    # repeated phrase ("Spend the afternoon wandering" on each day of an itinerary) is already above the
    # 4-gram limit. On the demo's clean data, 30 words flagged 137 of 5,639 sft and preference replies and
    # 74 of 1,051 rlvr prompts, 100 flagged 41 replies, 150 none; a looping reply runs far past 150 words.
    # Documents get 100 (the text regime's quality_defaults, ptdata/core/regimes.py).
    min_words: int = Field(150, ge=1)
    max_dup_line_frac: float = Field(0.30, ge=0, le=1)
    max_dup_para_frac: float = Field(0.30, ge=0, le=1)
    max_dup_line_char_frac: float = Field(0.20, ge=0, le=1)
    max_dup_para_char_frac: float = Field(0.20, ge=0, le=1)
    # the most frequent n-gram's share of the characters, for n = 2, 3, 4
    max_top_ngram_char_frac: _NgramLimits = {2: 0.20, 3: 0.18, 4: 0.16}
    # the share of characters inside repeated n-grams (after their first occurrence), for n = 5..10
    max_dup_ngram_char_frac: _NgramLimits = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# words: runs of letters and digits, except that each CJK character is a word of its own (no spaces there)
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_TABLE_ROW = re.compile(r"^[ \t]*\|.*$", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _duplicates(items: list[str]) -> tuple[float, float]:
    """(share of items that repeat an earlier one, share of characters in those repeats)."""
    seen: set[str] = set()
    dup = dup_chars = total_chars = 0
    for x in items:
        total_chars += len(x)
        if x in seen:
            dup += 1
            dup_chars += len(x)
        else:
            seen.add(x)
    return (dup / len(items), dup_chars / total_chars) if items and total_chars else (0.0, 0.0)


def _ngrams(ids: list[int], n: int) -> Iterator[tuple[int, ...]]:
    return zip(*(ids[i:] for i in range(n)), strict=False)


def repetition_stats(text: str, rule: RepetitionRule) -> dict[str, float] | None:
    """Gopher's repetition statistics of `text`, or None below `min_words` words.

    Fenced code and Markdown table rows are left out: their repetition is their format (the same keywords
    on every line, a "Yes" in every row), not a model stuck in a loop."""
    if len(text) < rule.min_words:  # a word is at least a character: too few words, without finding them
        return None
    if "```" in text or "~~~" in text:
        text = FENCED_CODE.sub("\n\n", text)
    if "|" in text:
        text = _TABLE_ROW.sub("", text)
    words = _WORD.findall(text)
    if len(words) < rule.min_words:
        return None
    lines = [ln for ln in (line.strip() for line in text.split("\n")) if ln]
    paragraphs = [p for p in (p.strip() for p in _PARAGRAPH_BREAK.split(text)) if p]
    stats: dict[str, float] = {}
    stats["dup_line_frac"], stats["dup_line_char_frac"] = _duplicates(lines)
    stats["dup_para_frac"], stats["dup_para_char_frac"] = _duplicates(paragraphs)
    # words as small ints, so the n-gram tuples hash fast; lengths kept for the character shares
    vocab: dict[str, int] = {}
    ids = [vocab.setdefault(w, len(vocab)) for w in words]
    length_of = [0] * len(vocab)
    for w, i in zip(words, ids, strict=True):
        length_of[i] = len(w)
    total = sum(length_of[i] for i in ids)
    for n in rule.max_top_ngram_char_frac:
        (top, count), *_ = Counter(_ngrams(ids, n)).most_common(1) or [((), 0)]
        stats[f"top_{n}gram_char_frac"] = count * sum(length_of[i] for i in top) / total if count > 1 else 0.0
    for n in rule.max_dup_ngram_char_frac:
        # Gopher's count, as in its reference implementations: scan left to right, and when an n-gram has
        # been seen before, count its characters and jump past it so no character counts twice
        seen: set[tuple[int, ...]] = set()
        dup_chars, i = 0, 0
        while i + n <= len(ids):
            gram = tuple(ids[i : i + n])
            if gram in seen:
                dup_chars += sum(length_of[j] for j in gram)
                i += n
            else:
                seen.add(gram)
                i += 1
        stats[f"dup_{n}gram_char_frac"] = dup_chars / total
    return stats


def _limits(rule: RepetitionRule) -> dict[str, float]:
    return {
        "dup_line_frac": rule.max_dup_line_frac,
        "dup_line_char_frac": rule.max_dup_line_char_frac,
        "dup_para_frac": rule.max_dup_para_frac,
        "dup_para_char_frac": rule.max_dup_para_char_frac,
        **{f"top_{n}gram_char_frac": v for n, v in rule.max_top_ngram_char_frac.items()},
        **{f"dup_{n}gram_char_frac": v for n, v in rule.max_dup_ngram_char_frac.items()},
    }


def repetition_pressure(text: str, rule: RepetitionRule) -> float:
    """The largest repetition statistic as a share of its limit: above 1.0 fails the rule."""
    stats = repetition_stats(text, rule)
    if stats is None:
        return 0.0
    limits = _limits(rule)
    # a limit of 0 allows no repetition at all: any fails it
    return max((v / limits[k] if limits[k] > 0 else math.inf if v > 0 else 0.0) for k, v in stats.items())
