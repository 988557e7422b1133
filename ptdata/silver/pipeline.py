"""Silver as an ordered list of steps: normalize → redact → language → quality → decontaminate → exact → near.

Each step has one `run`. The record steps run over a batch of bronze records when dedup_signatures is staged, in
this order, once per record; the history steps (exact and near dedup) run when silver_<regime> is staged, over
what the signatures of every partition up to the day can reach (ptdata/silver/stage.py). The order is the
rejection precedence: a record is rejected by the first step that rejects it, and only records no record step
rejected take part in dedup, so a duplicate always names a record that is in silver. The funnel (records left
after each rejecting step) and the rejection reasons are derived from this list (ARCHITECTURE.md, principle 7).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ptdata.core.regimes import all_text, map_text_fields
from ptdata.silver.decontam import EvalIndex, find_contamination_batch
from ptdata.silver.langid import detect_record_langs
from ptdata.silver.normalize import normalize_text
from ptdata.silver.pii import Allowlist, redact
from ptdata.silver.quality import QualityRules, evaluate


@dataclass(frozen=True)
class SourceRules:
    """What a source configures of its records' silver steps."""

    allow: Allowlist
    quality: QualityRules


@dataclass
class RecordBatch:
    """Bronze records of one regime and partition on their way through the record steps, with what each step
    found: the records' text is replaced by the prepared (normalized, redacted) text as the steps run."""

    regime: str
    records: list[dict[str, Any]]
    rules: Mapping[str, SourceRules]
    index: EvalIndex
    pii: list[Counter[str]] = field(default_factory=list)
    lang: list[tuple[str, float]] = field(default_factory=list)
    quality_score: list[float] = field(default_factory=list)
    # per record: the first rejecting step's reason (None while it may survive), its detail, and the eval set
    reject: list[str | None] = field(default_factory=list)
    detail: list[str | None] = field(default_factory=list)
    eval_set: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.records)
        self.pii = [Counter() for _ in range(n)]
        self.reject, self.detail, self.eval_set = [None] * n, [None] * n, [None] * n

    def rejected(self, i: int, reason: str, detail: str, eval_set: str | None = None) -> None:
        if self.reject[i] is None:
            self.reject[i], self.detail[i], self.eval_set[i] = reason, detail, eval_set

    def pii_json(self) -> list[str | None]:
        return [orjson.dumps(dict(sorted(c.items()))).decode() if c else None for c in self.pii]


@dataclass(frozen=True)
class Step:
    name: str
    # the rejection reason it gives (a prefix for quality:<rule>), and the funnel stage of the records it passes
    reason: str | None = None
    funnel: str | None = None
    scope: Literal["record", "history"] = "record"

    def run(self, batch: RecordBatch) -> None:
        """A record step's work on a batch; the history steps run in silver's staging instead."""
        raise TypeError(f"{self.name} runs over the history of signatures, not over a batch of records")


class Normalize(Step):
    def run(self, batch: RecordBatch) -> None:
        batch.records = [map_text_fields(batch.regime, r, normalize_text) for r in batch.records]


class Redact(Step):
    def run(self, batch: RecordBatch) -> None:
        for i, r in enumerate(batch.records):
            batch.records[i] = redact_record(batch.regime, r, batch.rules[r["source"]].allow, batch.pii[i])


class Language(Step):
    def run(self, batch: RecordBatch) -> None:
        batch.lang = detect_record_langs(batch.regime, batch.records)


class Quality(Step):
    def run(self, batch: RecordBatch) -> None:
        for i, (r, lang) in enumerate(zip(batch.records, batch.lang, strict=True)):
            q = evaluate(batch.regime, r, batch.rules[r["source"]].quality, lang)
            batch.quality_score.append(q.score)
            if not q.passed:
                batch.rejected(i, q.reason, ",".join(q.failed_rules))


class Decontaminate(Step):
    def run(self, batch: RecordBatch) -> None:
        if not len(batch.index):
            return
        texts = [all_text(batch.regime, r) for r in batch.records]
        for i, match in enumerate(find_contamination_batch(batch.index, texts)):
            if match is not None:
                batch.rejected(i, "contaminated", f"{match.item_id}: {match.ngram}", match.eval_set)


SILVER_STEPS: tuple[Step, ...] = (
    Normalize("normalize"),
    Redact("redact"),
    Language("language"),
    Quality("quality", reason="quality:", funnel="quality"),
    Decontaminate("decontaminate", reason="contaminated", funnel="decontaminated"),
    Step("exact", reason="exact_dup", funnel="exact_unique", scope="history"),
    Step("near", reason="near_dup", funnel="silver", scope="history"),
)
RECORD_STEPS = tuple(s for s in SILVER_STEPS if s.scope == "record")
# records left after each rejecting step, per source: what the funnel metadata and the accounting report
FUNNEL_STAGES = ("bronze", *(s.funnel for s in SILVER_STEPS if s.funnel))


def rejecting_step(reason: str) -> int:
    """The position in SILVER_STEPS of the step that gives `reason`."""
    for i, s in enumerate(SILVER_STEPS):
        if s.reason is not None and (reason == s.reason or s.reason.endswith(":") and reason.startswith(s.reason)):
            return i
    raise ValueError(f"no silver step rejects with {reason!r}")


def funnel_passed(reason: str | None) -> tuple[str, ...]:
    """The funnel stages a record with this rejection reason (None: kept) is counted in."""
    if reason is None:
        return FUNNEL_STAGES
    stop = rejecting_step(reason)
    return ("bronze", *(s.funnel for s in SILVER_STEPS[:stop] if s.funnel))


def run_record_steps(batch: RecordBatch) -> RecordBatch:
    for step in RECORD_STEPS:
        step.run(batch)
    return batch


def prepare_record(regime: str, record: dict[str, Any], allow: Allowlist) -> tuple[dict[str, Any], Counter[str]]:
    """One record through normalize and redact alone, with the PII spans redacted per type (what silver stores
    of its text, for tools and benchmarks that need a single record's)."""
    counts: Counter[str] = Counter()
    return redact_record(regime, map_text_fields(regime, record, normalize_text), allow, counts), counts


def redact_record(regime: str, record: dict[str, Any], allow: Allowlist, counts: Counter[str]) -> dict[str, Any]:
    """The record with every text field redacted, counting the spans per type into `counts`."""

    def clean(text: str) -> str:
        redacted, found = redact(text, allow)
        counts.update(found)
        return redacted

    return map_text_fields(regime, record, clean)
