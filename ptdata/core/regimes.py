"""The regime registry: what each kind of training record is, written once and read by every layer.

A regime (sft, preference, rlvr, text) owns its canonical columns, which of them are text, what it is deduplicated
and language-identified on, which quality rules mean something for it and their defaults, how gold lays it out
(packed chat or document sequences, preference pairs, RL prompts) and which input shapes bronze maps to it. The
layers dispatch on these facts, never on a regime's name, so adding a regime is one `register` call plus the code
that is genuinely new (a shape mapper in ptdata/bronze/shapes.py, say). See ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from ptdata.core.registry import Registry

# a conversation: list<struct<role, content>>, roles system/user/assistant/tool
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
# how gold lays a regime out: `chat` and `document` sequences are packed into seq_len rows; a `pair` is one
# preference pair a row (prompt + chosen, prompt + rejected); a `prompt` is one RL prompt a row, rendered with the
# generation prompt, with the regime's other columns passed through for the verifier
GoldLayout = Literal["chat", "document", "pair", "prompt"]
# what a column check of `column_checks` asserts of every value (bronze and silver schemas)
ColumnCheck = Literal["non_empty", "json_object"]


@dataclass(frozen=True)
class Regime:
    name: str
    columns: tuple[tuple[str, pa.DataType], ...]
    # string columns that hold text (normalized, redacted, scanned); message columns are text by their type
    string_fields: tuple[str, ...]
    # the columns a record is deduplicated on by default (dedup.fields overrides them per regime)
    dedup_fields: tuple[str, ...]
    # the columns whose user and assistant turns (and strings) tell the record's language
    lang_fields: tuple[str, ...]
    # message columns whose last assistant turn is the reply the quality rules judge; none: `length_fields` instead
    reply_fields: tuple[str, ...]
    # what the length rule measures when the regime has no reply
    length_fields: tuple[str, ...]
    quality_rules: frozenset[str]
    # rule by rule, what differs from the rules' field defaults (which are sft's)
    quality_defaults: Mapping[str, Mapping[str, Any]]
    gold_layout: GoldLayout
    # the input shapes bronze maps to this regime, in the order `shape: auto` tries them
    shapes: tuple[str, ...]
    column_checks: Mapping[str, ColumnCheck] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def message_fields(self) -> tuple[str, ...]:
        return tuple(name for name, t in self.columns if t == MESSAGES)

    @property
    def text_fields(self) -> tuple[str, ...]:
        """Every column that holds text, in column order: what decontamination, PII scans and lengths read."""
        return tuple(n for n in self.column_names if n in self.message_fields or n in self.string_fields)

    @property
    def packs(self) -> bool:
        """Whether gold packs this regime's sequences into seq_len rows."""
        return self.gold_layout in ("chat", "document")


# the names of silver's quality rules (ptdata/silver/quality/, a module each), in the order failures are reported
QUALITY_RULES = (
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
_ALL_RULES = frozenset(QUALITY_RULES)
REGIMES: Registry[Regime] = Registry("regime")
register = REGIMES.register
regime = REGIMES.get


def map_text_fields(name: str, record: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """A copy of a canonical record with `fn` applied to every text field (message contents, answer, text);
    other columns, verifier_args among them, are passed through."""
    spec = regime(name)
    out = dict(record)
    for column in spec.message_fields:
        if out.get(column) is not None:
            out[column] = [
                {**m, "content": fn(m["content"])} if isinstance(m.get("content"), str) else dict(m)
                for m in out[column]
            ]
    for column in spec.string_fields:
        if isinstance(out.get(column), str):
            out[column] = fn(out[column])
    return out


def all_text(name: str, record: dict[str, Any]) -> str:
    """Every text field of a record, one after another: what decontamination and the residual PII scan read."""
    parts: list[str] = []

    def collect(text: str) -> str:
        parts.append(text)
        return text

    map_text_fields(name, record, collect)
    return "\n".join(parts)


def regimes() -> tuple[Regime, ...]:
    return tuple(REGIMES.entries.values())


def regime_names() -> tuple[str, ...]:
    return REGIMES.names()


def allowed_names() -> str:
    return REGIMES.listed()


register(
    Regime(
        name="sft",
        columns=(("messages", MESSAGES),),
        string_fields=(),
        # the whole conversation: two conversations that share a prompt but answer differently are different
        # examples, and the same answer in another conversation is too
        dedup_fields=("messages",),
        lang_fields=("messages",),
        reply_fields=("messages",),
        length_fields=(),
        quality_rules=_ALL_RULES - {"identical_pair", "unparseable_answer"},
        quality_defaults={},
        gold_layout="chat",
        shapes=("messages", "sharegpt", "alpaca", "prompt_response"),
    )
)
register(
    Regime(
        name="preference",
        columns=(("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)),
        string_fields=(),
        # prompt + chosen: binarized preference sets pair one chosen answer with several rejected ones; those pairs
        # all push the model towards the same answer, so copies that differ only in `rejected` are duplicates
        dedup_fields=("prompt", "chosen"),
        lang_fields=("prompt", "chosen"),
        reply_fields=("chosen", "rejected"),
        length_fields=(),
        quality_rules=_ALL_RULES - {"unparseable_answer"},
        quality_defaults={"refusal": {"enabled": False}},
        gold_layout="pair",
        shapes=("hh", "preference"),
    )
)
register(
    Regime(
        name="rlvr",
        # verifier_args is JSON whose strings (test code, expected outputs) verifiers compare byte for byte: not text
        columns=(
            ("prompt", MESSAGES),
            ("answer", pa.string()),
            ("verifier", pa.string()),
            ("verifier_args", pa.string()),
        ),
        string_fields=("answer",),
        # the prompt: the reward comes from the verifier, not from a reference text, so the same problem twice is
        # the same training signal whatever its answer field says
        dedup_fields=("prompt",),
        lang_fields=("prompt",),
        reply_fields=(),
        length_fields=("prompt",),
        quality_rules=frozenset({"empty_turn", "length", "repetition", "unparseable_answer", "language"}),
        # the prompt is checked: a problem needs a sentence, and 16k characters is more than any real one
        quality_defaults={"length": {"min_chars": 8, "max_chars": 16_000}},
        gold_layout="prompt",
        shapes=("rlvr",),
        column_checks={"verifier": "non_empty", "verifier_args": "json_object"},
    )
)
register(
    Regime(
        name="text",
        columns=(("text", pa.string()),),
        string_fields=("text",),
        dedup_fields=("text",),
        lang_fields=("text",),
        reply_fields=(),
        length_fields=("text",),
        quality_rules=frozenset({"empty_turn", "length", "repetition", "language"}),
        # Gopher keeps web documents of 50 to 100,000 words (~250 to ~600,000 characters). Text sources here also
        # hold forum posts and notes of two or three sentences, so the floor is a sentence; a web crawl source
        # can raise it to 250. min_words 100: Gopher's 50 flagged 2% of the demo's clean meeting notes.
        quality_defaults={"length": {"min_chars": 50, "max_chars": 600_000}, "repetition": {"min_words": 100}},
        gold_layout="document",
        shapes=("text",),
    )
)
