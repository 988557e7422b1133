"""Named quality rules over canonical records, a per-regime configuration, and a quality score.

A record that fails a rule is rejected with reason `quality:<rule>`; `evaluate` reports every rule it fails,
in the order of `RULES`, so `QualityResult.reason` (the first) is stable. The rules and what they look at:

    empty_turn          a message (other than a tool turn) with blank content, an empty message list, a blank
                        rlvr answer or a blank text document
    no_assistant_turn   sft: no assistant message; preference: chosen or rejected has no assistant message
    length              the response's length in characters is outside [min_chars, max_chars]; the response
                        is the last assistant message (sft), the last assistant message of chosen and of
                        rejected (preference), the prompt (rlvr: the record's substance is the problem) and
                        the document (text)
    repetition          Gopher (Rae et al. 2021, appendix A) repetition limits on the response (sft, the
                        chosen reply, the rlvr prompt, the document), fenced code and table rows excluded,
                        for texts of at least `min_words` words
    truncated           the final reply has an unclosed ``` fence or stops mid-sentence (see `ending`)
    refusal             the final reply is or starts with refusal boilerplate ("As an AI language model", ...)
    identical_pair      preference: chosen and rejected are the same after normalization
    unparseable_answer  rlvr: the verifier cannot use the reference answer
    language            the detected language is not in the source's `allowed` list

Rules that judge a reply's quality (repetition, truncated, refusal) look at the chosen reply only: a
truncated or refusing rejected reply is exactly what preference training learns to avoid. Refusal is off
by default for preference data, where a refusal is often the chosen reply of a safety pair.

quality_score: 0.0 when any rule fails. Otherwise 1 minus a weighted sum of soft signals, each in [0, 1]:
    0.5 x repetition pressure   the largest Gopher statistic as a share of its limit (0 below `min_words`)
    0.3 x unfinished ending     1 when the final reply ends without terminal punctuation (a bare word, a
                                number) though not so that `truncated` fails; 0 for rlvr and text
    0.2 x language uncertainty  1 - langid probability, when the language is known (passed in, or detected
                                for the language rule); 0 otherwise
So a clean, punctuated, confidently identified reply scores near 1 and nothing that passes scores 0.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.langid import FENCED_CODE, UNDETERMINED, detect_record_lang
from ptdata.silver.normalize import normalize_text

RULES = (
    "empty_turn",
    "no_assistant_turn",
    "length",
    "repetition",
    "truncated",
    "refusal",
    "identical_pair",
    "unparseable_answer",
    "language",
)
VERIFIERS = ("math", "exact", "code_tests")

_SCORE_WEIGHTS = {"repetition": 0.5, "ending": 0.3, "language": 0.2}

# Matched at the start of the final reply (after leading whitespace), case-insensitive, with ’ read as '.
# Each needs the refusal itself, not just an apology: "I'm sorry to hear that, here is how to fix it" passes.
DEFAULT_REFUSAL_PATTERNS = (
    r"as an ai(?: language)? model\b",
    r"as an (?:ai|artificial intelligence)\b[^.!?\n]{0,80}?\b(?:cannot|can ?not|can't|unable|not able|won't|will not)\b",
    r"i(?:'m| am) sorry,? but\b[^.!?\n]{0,80}?\bi(?: cannot| can ?not| can't| won't| will not|'m unable| am unable"
    r"|'m not able| am not able| must decline)\b",
    r"(?:sorry|i apologi[sz]e),? (?:but )?i(?: cannot| can ?not| can't| won't| will not|'m unable| am unable"
    r"|'m not able| am not able)\b",
    r"(?:unfortunately,? )?i(?: cannot| can ?not| can't| won't| will not|'m unable to| am unable to|'m not able to"
    r"| am not able to) (?:help|assist|provide|fulfil|fulfill|comply|do that|support|answer|engage|create|generate"
    r"|write)\b(?! but)",
    r"i must (?:decline|refuse)\b",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    enabled: bool = True


class LengthRule(Rule):
    min_chars: int = Field(1, ge=0)
    max_chars: int = Field(32_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> LengthRule:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars {self.min_chars} is above max_chars {self.max_chars}")
        return self


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


class RefusalRule(Rule):
    patterns: tuple[str, ...] = DEFAULT_REFUSAL_PATTERNS

    @model_validator(mode="after")
    def _compiles(self) -> RefusalRule:
        for p in self.patterns:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"refusal pattern {p!r} is not a regular expression: {e}") from None
        return self


class LanguageRule(Rule):
    allowed: tuple[str, ...] | None = None  # ISO 639-1 codes; None allows every language
    allow_und: bool = True  # text too short or too mixed to tell passes unless this is off


class QualityRules(_Strict):
    """Per-rule switches and parameters. `QualityRules.for_regime` gives each regime's defaults."""

    empty_turn: Rule = Rule()
    no_assistant_turn: Rule = Rule()
    length: LengthRule = LengthRule()
    repetition: RepetitionRule = RepetitionRule()
    truncated: Rule = Rule()
    refusal: RefusalRule = RefusalRule()
    identical_pair: Rule = Rule()
    unparseable_answer: Rule = Rule()
    language: LanguageRule = LanguageRule()

    @classmethod
    def for_regime(
        cls,
        regime: str,
        overrides: Mapping[str, Any] | None = None,
        allowed_languages: list[str] | tuple[str, ...] | None = None,
    ) -> QualityRules:
        """The regime's defaults, updated rule by rule from `overrides` (e.g. {"length": {"max_chars": 8000}})
        and with the source's allowed languages, validated as a whole."""
        merged: dict[str, Any] = {k: dict(v) for k, v in regime_spec(regime).quality_defaults.items()}
        for rule, params in (overrides or {}).items():
            merged[rule] = {**merged.get(rule, {}), **params} if isinstance(params, Mapping) else params
        if allowed_languages is not None:
            merged["language"] = {**merged.get("language", {}), "allowed": tuple(allowed_languages)}
        return cls.model_validate(merged)


@dataclass(frozen=True)
class QualityResult:
    passed: bool
    failed_rules: list[str]
    score: float

    @property
    def reason(self) -> str | None:
        """The rejection reason, `quality:<first failed rule>`, or None when the record passed."""
        return f"quality:{self.failed_rules[0]}" if self.failed_rules else None


# --------------------------------------------------------------------------------------------- record parts


def _blank(s: Any) -> bool:
    return not isinstance(s, str) or not s.strip()


def _last_assistant(messages: list[dict[str, Any]] | None) -> str | None:
    for m in reversed(messages or ()):
        if m.get("role") == "assistant":
            return m.get("content") or ""
    return None


def _responses(regime: str, record: dict[str, Any]) -> list[str | None]:
    """The texts the length rule measures; the first is the one the reply rules judge."""
    spec = regime_spec(regime)
    if spec.reply_fields:
        return [_last_assistant(record.get(name)) for name in spec.reply_fields]
    return [_joined(record.get(name)) for name in spec.length_fields]


def _joined(value: str | list[dict[str, Any]] | None) -> str | None:
    """A text column as it is, a message column's contents one after another."""
    if value is None or isinstance(value, str):
        return value
    return "\n".join(m.get("content") or "" for m in value)


def _has_empty_turn(regime: str, record: dict[str, Any]) -> bool:
    spec = regime_spec(regime)
    for name in spec.message_fields:
        messages = record.get(name)
        if not messages:
            return True
        # a tool may legitimately return nothing (a command without output)
        if any(_blank(m.get("content")) for m in messages if m.get("role") != "tool"):
            return True
    return any(_blank(record.get(name)) for name in spec.string_fields)


def _has_no_assistant_turn(regime: str, record: dict[str, Any]) -> bool:
    return any(_last_assistant(record.get(name)) is None for name in regime_spec(regime).reply_fields)


def _comparable(messages: list[dict[str, Any]] | None) -> list[tuple[Any, str]]:
    # whitespace differences carry no preference, so runs of whitespace count as one space
    return [(m.get("role"), " ".join(normalize_text(m.get("content") or "").split())) for m in messages or ()]


# ----------------------------------------------------------------------------------------------- repetition

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


# -------------------------------------------------------------------------------------------------- endings

_FENCE_LINE = re.compile(r"^[ \t]*```", re.MULTILINE)
# sentence ends in Latin, CJK, Arabic and Devanagari scripts, and the closers that may follow one
_TERMINAL = frozenset(".!?…。！？．؟۔।\"'”’»›)]}>*_`~|")
# a reply that stops on one of these stopped in the middle of something
_CONNECTORS = frozenset(",:([{-–—/\\&+=、，：；")
_URL_AT_END = re.compile(r"(?:https?://|www\.)\S+$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|[a-zA-Z][.)])\s")
_RULE_LINE = re.compile(r"^\s*[-=*_]{3,}\s*$")
_CODE_LINE = re.compile(
    r"^(?: {4}|\t)|[;{}]\s*$|=>|==|!=|\)\s*$"
    r"|^\s*(?:def|class|return|import|from|if|elif|else|for|while|try|except|with|const|let|var|function|public"
    r"|private|SELECT|#include|print|echo|cd|pip|npm|git)\b"
)
# sentence-internal words: a reply ending on one was cut (compared case-sensitively, so "Vitamin A" ends well)
_FUNCTION_WORDS = frozenset(
    # English
    "a an the and or but nor because although whose my your our their its of to with from into onto than"
    # German, French, Spanish, Italian, Portuguese, Dutch
    " der die das und oder aber mit von zu den dem des ein eine einen einem le la les un une et ou du avec pour"
    " el los las una y con para del por il lo gli di per os um uma com het een en van".split()
)
_SENTENCE_ENDS = ".!?。！？"
_SENTENCE_END_INSIDE = re.compile(rf"[{_SENTENCE_ENDS}][\"'”’)\]]*\s+")


def _is_emoji_or_symbol(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk") or ord(ch) >= 0x1F000


def ending(text: str) -> Literal["ok", "unfinished", "cut"]:
    """How the final reply ends: "cut" fails the truncated rule, "unfinished" only lowers the score.

    cut: an odd number of ``` fence lines; a last character that continues something (comma, colon, open
    bracket, dash, operator); a last word that cannot end a sentence ("the", "and", "with", ...); or a plain
    word ending a line that already holds a finished sentence, where the unfinished one has 3+ words.
    Never cut: a closed fence, a URL, a code line, a table row, a heading, a rule, terminal punctuation, an
    emoji. A list item or a short line without punctuation is only "unfinished".
    """
    if len(_FENCE_LINE.findall(text)) % 2:
        return "cut"
    t = text.rstrip().rstrip("\ufe0f\u200d")  # emoji presentation selector and joiner trail some emoji
    if not t or t.endswith("```") or _URL_AT_END.search(t):
        return "ok"
    last_line = t[t.rfind("\n") + 1 :]
    if _CODE_LINE.search(last_line) or _RULE_LINE.match(last_line) or last_line.lstrip().startswith(("|", "#")):
        return "ok"
    last = t[-1]
    if last in _TERMINAL or _is_emoji_or_symbol(last):
        return "ok"
    if last in _CONNECTORS:
        return "cut"
    word = re.search(r"\w+$", t)
    if word and word.group() in _FUNCTION_WORDS:
        return "cut"
    if last.isdigit():
        return "unfinished"
    if _LIST_ITEM.match(last_line):
        # items may go without a full stop ("1. Open the app"), unless the author ended the previous one with
        # one: then a long last item without it was cut
        previous = t[: t.rfind("\n")].rstrip().rsplit("\n", 1)[-1] if "\n" in t else ""
        if _LIST_ITEM.match(previous) and previous[-1] in _SENTENCE_ENDS and len(last_line.split()) >= 5:
            return "cut"
        return "unfinished"
    parts = _SENTENCE_END_INSIDE.split(last_line)
    if len(parts) > 1 and len(parts[-1].split()) >= 3:
        return "cut"
    return "unfinished"


@functools.lru_cache(maxsize=32)
def _refusal_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def is_refusal(text: str, patterns: tuple[str, ...] = DEFAULT_REFUSAL_PATTERNS) -> bool:
    """Whether `text` is, or starts with, refusal boilerplate."""
    return bool(patterns) and _refusal_regex(patterns).match(text.lstrip()[:400].replace("’", "'")) is not None


# ---------------------------------------------------------------------------------------------- rlvr answers

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_LATEX_SPACING = re.compile(r"\\[,;:! ]|\\q?quad\b|\\left\b|\\right\b|\\displaystyle\b|~")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?|[-+]?\.\d+%?")
_LATEX_WORDS = {
    r"\pi": " pi ",
    r"\infty": " inf ",
    r"\cdot": "*",
    r"\times": "*",
    r"\div": "/",
    r"\sqrt": "sqrt",
    r"\ln": "ln",
    r"\log": "log",
    r"\sin": "sin",
    r"\cos": "cos",
    r"\tan": "tan",
    r"\exp": "exp",
}
_FUNCTIONS = frozenset({"sqrt", "ln", "log", "sin", "cos", "tan", "exp"})
_CONSTANTS = frozenset({"pi", "inf"})
_Node = tuple[str, Fraction | None]  # an expression's canonical text and, when it is rational, its value
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|([A-Za-z]+)|(\S))")


def _braced(s: str, open_at: int) -> tuple[str, int] | None:
    """The text inside the brace group that opens at s[open_at] == "{", and the index after it."""
    depth = 0
    for i in range(open_at, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[open_at + 1 : i], i + 1
    return None


def _latex_to_plain(s: str) -> str | None:
    """\\frac{a}{b} → ((a)/(b)), \\sqrt{x} → sqrt(x), ^{n} → ^(n), known macros → words; None on an
    unbalanced group or an unknown macro."""
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    for macro in (r"\dfrac", r"\tfrac", r"\frac"):
        while (i := s.find(macro)) >= 0:
            j = i + len(macro)
            num = _braced(s, j) if s[j : j + 1] == "{" else None
            den = _braced(s, num[1]) if num and s[num[1] : num[1] + 1] == "{" else None
            if num is None or den is None:
                return None
            s = f"{s[:i]}(({num[0]})/({den[0]})){s[den[1] :]}"
    for macro, plain in _LATEX_WORDS.items():
        s = s.replace(macro, plain)
    if "\\" in s:
        return None
    return s.replace("{", "(").replace("}", ")")


class _ExpressionParser:
    """A recursive-descent check that a string is a simple arithmetic expression: numbers, pi, inf,
    single-letter variables, + - * / ^, implicit products ("2x", "3sqrt(2)"), calls of a few functions,
    parentheses, and comma-separated tuples at the top ("(1, 2)", "[0, 1)").

    Each method returns (canonical text, exact value): the value is a Fraction while the expression is
    rational arithmetic, so "\\frac{6}{4}" and "1.5" come out the same, and None once a variable, a function
    or a constant is involved."""

    def __init__(self, s: str) -> None:
        # every non-space character is a token of some kind, so the matches cover the string
        self.tokens = [m.group(m.lastindex or 0) for m in _TOKEN.finditer(s)]
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> str | None:
        if not self.tokens:
            return None
        try:
            if self.tokens[0] in "([" and self.tokens[-1] in ")]" and "," in self.tokens:
                # a tuple or an interval: brackets kept, since "[0, 1)" and "(0, 1)" differ
                opening, closing = self.take(), self.tokens.pop()
                items = [_text(self.expr())]
                while self.peek() == ",":
                    self.take()
                    items.append(_text(self.expr()))
                out = opening + ",".join(items) + closing
            else:
                out = _text(self.expr())
        except (IndexError, ValueError, ZeroDivisionError, RecursionError):
            return None  # RecursionError: thousands of nested parentheses are not an answer
        return out if self.peek() is None else None

    def expr(self) -> _Node:
        text, value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rtext, rvalue = self.term()
            text += op + rtext
            if value is not None and rvalue is not None:
                value = value + rvalue if op == "+" else value - rvalue
            else:
                value = None
        return text, value

    def term(self) -> _Node:
        text, value = self.factor()
        while True:
            tok = self.peek()
            if tok in ("*", "/"):
                op = self.take()
            elif tok is not None and (tok == "(" or tok[0].isalnum() or tok == "."):
                op = "*"  # implicit product: 2x, 2(3+1), 3sqrt(2)
            else:
                return text, value
            rtext, rvalue = self.factor()
            text += op + rtext
            if value is not None and rvalue is not None:
                value = value * rvalue if op == "*" else value / rvalue
            else:
                value = None

    def factor(self) -> _Node:
        if self.peek() in ("+", "-"):
            sign = self.take()
            text, value = self.factor()
            return sign + text, (-value if sign == "-" and value is not None else value)
        text, value = self.atom()
        if self.peek() != "^":
            return text, value
        self.take()
        etext, exponent = self.factor()
        # only integer powers with a result of at most ~4096 bits are evaluated: 10^100000 or ((10^64)^64)^64
        # would cost time and memory for nothing
        if value is not None and exponent is not None and exponent.denominator == 1:
            size = max(value.numerator.bit_length(), value.denominator.bit_length())
            if abs(exponent) * size <= 4096:
                return f"{text}^{etext}", value ** int(exponent)
        return f"{text}^{etext}", None

    def atom(self) -> _Node:
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            value = Fraction(tok)
            return _canonical_rational(value), value
        if tok == "(":
            text, value = self.expr()
            if self.take() != ")":
                raise ValueError("unclosed parenthesis")
            return f"({text})", value
        if tok in _FUNCTIONS:
            if self.take() != "(":
                raise ValueError(f"{tok} needs an argument in parentheses")
            text, _ = self.expr()
            if self.take() != ")":
                raise ValueError("unclosed parenthesis")
            return f"{tok}({text})", None
        if tok in _CONSTANTS or (tok.isalpha() and len(tok) == 1):
            return tok, None
        raise ValueError(f"unexpected {tok!r}")


def _text(node: _Node) -> str:
    """A parsed expression's canonical text: its exact value when it has one, else its plain spelling."""
    return _canonical_rational(node[1]) if node[1] is not None else node[0]


def _canonical_rational(value: Fraction) -> str:
    """An exact number as text: "7" for 7, "3.5" for 7/2 (a terminating decimal), "1/3" otherwise."""
    if value.denominator == 1:
        return str(value.numerator)
    d, twos, fives = value.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    # exact decimal digits: the denominator divides 10^places, and a reduced fraction leaves no trailing zero
    places = max(twos, fives)
    scaled = abs(value.numerator) * 10**places // value.denominator
    digits = str(scaled).rjust(places + 1, "0")
    return f"{'-' if value < 0 else ''}{digits[:-places]}.{digits[-places:]}"


def parse_math_answer(s: str) -> str | None:
    """The canonical form of a math reference answer, or None when a math verifier could not use it.

    Accepted: numbers ("42", "-3.5", "1,234", "1e-3", "50%"), fractions ("1/2", "\\frac{1}{2}"), the content
    of the last \\boxed{...}, the part after a GSM8K "####", "$...$" and "x = ..." wrappers, and simple
    expressions of those with pi, sqrt and one-letter variables ("2\\sqrt{3}", "\\frac{\\pi}{4}", "(1, 2)").
    Rational values come out in one form whatever the spelling ("0.50", "1/2" and "\\frac{2}{4}" all give
    "0.5"; "\\frac{1}{3}" gives "1/3"); other expressions as plain text without spaces ("2*sqrt(3)").
    """
    s = s.strip()
    if "####" in s:
        s = s.rsplit("####", 1)[1].strip()
    boxes = list(_BOXED.finditer(s))
    if boxes:
        group = _braced(s, boxes[-1].end() - 1)
        if group is None:
            return None
        s = group[0].strip()
    for left, right in (("$$", "$$"), ("$", "$"), (r"\(", r"\)"), (r"\[", r"\]")):
        if s.startswith(left) and s.endswith(right) and len(s) > len(left) + len(right):
            s = s[len(left) : -len(right)].strip()
            break
    s = _LATEX_SPACING.sub(" ", _LATEX_TEXT.sub(r" \1 ", s)).strip().rstrip(".").strip()
    s = re.sub(r"^[A-Za-z]\s*=\s*", "", s)  # "x = 5" answers the variable's value
    # an escaped percent sign, and a dollar sign, escaped or not, before an amount ("$5", "\\$5")
    s = re.sub(r"^\\?\$(?=\d)", "", s.replace("\\%", "%"))
    if _NUMBER.fullmatch(s):
        # thousands separators and percent signs are number syntax that the expression parser does not know
        percent = s.endswith("%")
        return _canonical_rational(Fraction(s.rstrip("%").replace(",", ""))) + ("%" if percent else "")
    plain = _latex_to_plain(s) if "\\" in s or "{" in s else s
    return _ExpressionParser(plain).parse() if plain is not None else None


def _answer_is_usable(record: dict[str, Any]) -> bool:
    verifier, answer = record.get("verifier"), record.get("answer")
    if verifier == "math":
        return isinstance(answer, str) and parse_math_answer(answer) is not None
    if verifier == "exact":
        return not _blank(answer)
    if verifier == "code_tests":
        try:
            args = orjson.loads(record.get("verifier_args") or "{}")
        except orjson.JSONDecodeError:
            return False
        tests = args.get("tests") if isinstance(args, dict) else None
        return isinstance(tests, list) and len(tests) > 0
    return False  # a verifier nobody implements cannot check anything


# ------------------------------------------------------------------------------------------------ evaluate


def evaluate(
    regime: str, record: dict[str, Any], rules: QualityRules, lang: tuple[str, float] | None = None
) -> QualityResult:
    """Apply the regime's enabled rules to a canonical (normalized) record.

    `lang` is the record's (code, probability) when the caller has detected it already (the silver `lang`
    column); otherwise it is detected here, and only when the language rule has an allowed list.
    """
    spec = regime_spec(regime)
    active = {name for name in spec.quality_rules if getattr(rules, name).enabled}
    failed: set[str] = set()
    responses = _responses(regime, record)
    reply = responses[0]

    if "empty_turn" in active and _has_empty_turn(regime, record):
        failed.add("empty_turn")
    if "no_assistant_turn" in active and _has_no_assistant_turn(regime, record):
        failed.add("no_assistant_turn")
    if "length" in active:
        bounds = rules.length
        if any(r is not None and not bounds.min_chars <= len(r) <= bounds.max_chars for r in responses):
            failed.add("length")

    pressure = 0.0
    if "repetition" in active and reply:
        pressure = repetition_pressure(reply, rules.repetition)
        if pressure > 1.0:
            failed.add("repetition")

    end = "ok"
    if spec.reply_fields and reply:
        end = ending(reply)
        if "truncated" in active and end == "cut":
            failed.add("truncated")
    if "refusal" in active and reply and is_refusal(reply, rules.refusal.patterns):
        failed.add("refusal")
    if "identical_pair" in active and _comparable(record.get("chosen")) == _comparable(record.get("rejected")):
        failed.add("identical_pair")
    if "unparseable_answer" in active and not _answer_is_usable(record):
        failed.add("unparseable_answer")

    if "language" in active and rules.language.allowed is not None:
        if lang is None:
            lang = detect_record_lang(regime, record)
        code = lang[0]
        if not (code in rules.language.allowed or (code == UNDETERMINED and rules.language.allow_und)):
            failed.add("language")

    failed_rules = [name for name in RULES if name in failed]
    if failed_rules:
        return QualityResult(False, failed_rules, 0.0)
    soft = {
        "repetition": min(pressure, 1.0),
        "ending": 1.0 if end == "unfinished" else 0.0,
        "language": 1.0 - lang[1] if lang is not None else 0.0,
    }
    score = 1.0 - sum(_SCORE_WEIGHTS[k] * v for k, v in soft.items())
    return QualityResult(True, [], round(min(max(score, 0.0), 1.0), 6))
