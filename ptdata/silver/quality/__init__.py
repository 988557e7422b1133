"""Named quality rules over canonical records, a per-regime configuration, and a quality score.

A record that fails a rule is rejected with reason `quality:<rule>`; `evaluate` reports every rule it fails,
in the order of `RULES`; each rule is a module of this package with its config and defaults, so `QualityResult.reason` (the first) is stable. The rules and what they look at:

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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ptdata.core.regimes import QUALITY_RULES
from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.langid import detect_record_lang
from ptdata.silver.quality.base import Rule, Strict
from ptdata.silver.quality.empty_turn import has_empty_turn
from ptdata.silver.quality.identical_pair import identical
from ptdata.silver.quality.language import LanguageRule, not_allowed
from ptdata.silver.quality.length import LengthRule, responses, too_long_or_short
from ptdata.silver.quality.no_assistant_turn import has_no_assistant_turn
from ptdata.silver.quality.refusal import RefusalRule, is_refusal
from ptdata.silver.quality.repetition import RepetitionRule, repetition_pressure, repetition_stats
from ptdata.silver.quality.truncated import ending
from ptdata.silver.quality.unparseable_answer import answer_is_usable

# the rules in the order a record's failures are reported (its reason is the first); a module of this package each
RULES = QUALITY_RULES

_SCORE_WEIGHTS = {"repetition": 0.5, "ending": 0.3, "language": 0.2}


class QualityRules(Strict):
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
    replies = responses(regime, record)
    reply = replies[0]

    if "empty_turn" in active and has_empty_turn(regime, record):
        failed.add("empty_turn")
    if "no_assistant_turn" in active and has_no_assistant_turn(regime, record):
        failed.add("no_assistant_turn")
    if "length" in active and too_long_or_short(replies, rules.length):
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
    if "identical_pair" in active and identical(record):
        failed.add("identical_pair")
    if "unparseable_answer" in active and not answer_is_usable(record):
        failed.add("unparseable_answer")

    if "language" in active and rules.language.allowed is not None:
        if lang is None:
            lang = detect_record_lang(regime, record)
        if not_allowed(lang[0], rules.language):
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


__all__ = [
    "RULES",
    "QualityResult",
    "QualityRules",
    "RepetitionRule",
    "ending",
    "evaluate",
    "is_refusal",
    "repetition_stats",
]
