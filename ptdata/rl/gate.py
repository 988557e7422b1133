"""The verifier gate: before a partition of RL prompts is published, every record's verifier is tried on the record
itself. Its reference answer, written as a completion, must score 1; a canary wrong answer (the verifier's own:
another number, another letter, a stub of the entry point) and an empty completion must score 0. A verifier that
rewards a canary is vacuous (marin#7784: one rewarded 1.0 on 48 of 48 trials while raising); a reference that does
not score 1 is wrong, unparseable or untestable. Either fails the gate, which blocks the partition; the rates of
errors by kind (unusable references, timeouts, exceptions) per verifier and source are its metadata.
ARCHITECTURE.md, "RL verifiers".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from ptdata.core import catalog
from ptdata.core.lake import Lake
from ptdata.core.outcome import Outcome
from ptdata.gold.stage import StagedGold
from ptdata.rl.verifiers import ERROR_KINDS, VERIFIERS, UnusableReference, Verdict, parse_args
from ptdata.rl.verifiers.pool import VerifierPool, VerifyTask, shared_pool

GATE = "verifiers"
# the completions each record is tried with, in this order
TRIALS = ("reference", "canary", "empty")
_FIRST = 5


def trials(verifier: str, answer: str, args: str | None) -> VerifyTask:
    """The record's three trials (TRIALS) in one task; a record whose verifier or args cannot even say what they
    are is tried with its answer three times (the verdicts then carry the error)."""
    try:
        entry, parsed = VERIFIERS.get(verifier), parse_args(args)
        completions = (entry.reference(answer, parsed), entry.canary(answer, parsed), "")
    except (ValueError, UnusableReference):
        completions = (answer, answer, answer)
    return VerifyTask(verifier, completions, answer, args)


def verifier_gate(rows: Iterable[Mapping[str, Any]], pool: VerifierPool, where: str) -> Outcome:
    """The gate over rows with record_id, source, answer, verifier and verifier_args; `where` names the partition
    in the failure message."""
    rows = list(rows)
    verdicts = pool.verify([trials(r["verifier"], r["answer"], r["verifier_args"]) for r in rows])
    stats: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    wrong_reference: list[str] = []
    rewarded_canary: list[str] = []
    n_wrong = n_canary = 0
    for k, row in enumerate(rows):
        reference, canary, empty = verdicts[k]
        counts = stats[row["verifier"]][row["source"]]
        counts["records"] += 1
        for verdict in (reference, canary, empty):
            if verdict.error:
                counts[verdict.error] += 1
        if reference.reward != 1.0:
            n_wrong += 1
            counts["reference_failed"] += 1
            if len(wrong_reference) < _FIRST:
                wrong_reference.append(f"{row['record_id']} ({row['verifier']}): {_why(reference)}")
        for name, verdict in (("canary", canary), ("empty", empty)):
            if verdict.reward > 0.0:
                n_canary += 1
                counts["canary_rewarded"] += 1
                if len(rewarded_canary) < _FIRST:
                    rewarded_canary.append(
                        f"{row['record_id']} ({row['verifier']}): the {name} scored {verdict.reward}"
                    )
    by_verifier = {v: {s: _rates(c) for s, c in sorted(by_source.items())} for v, by_source in sorted(stats.items())}
    meta = {
        "records": len(rows),
        "reference_failed": n_wrong,
        "canary_rewarded": n_canary,
        "workers_killed": pool.killed,
        "by_verifier": by_verifier,
        "first_reference_failed": wrong_reference,
        "first_canary_rewarded": rewarded_canary,
    }
    passed = not n_wrong and not n_canary
    problems = [f"{n_wrong} reference answers do not score 1"] * bool(n_wrong)
    problems += [f"{n_canary} canary answers are rewarded"] * bool(n_canary)
    first = (wrong_reference + rewarded_canary)[:1]
    desc = "" if passed else f"{GATE} failed on {where}: {', '.join(problems)}; first: {first[0]}"
    return Outcome(GATE, passed, meta, desc)


def _why(verdict: Verdict) -> str:
    if verdict.error:
        return f"{verdict.error}: {verdict.detail}"[:200]
    return f"scored {verdict.reward}"


def _rates(counts: Counter[str]) -> dict[str, Any]:
    n = counts["records"]
    out: dict[str, Any] = {"records": n, "reference_failed": counts["reference_failed"]}
    out["canary_rewarded"] = counts["canary_rewarded"]
    for kind in ERROR_KINDS:
        if counts[kind]:
            # per trial: each record is tried three times
            out[f"{kind}_rate"] = round(counts[kind] / (len(TRIALS) * n), 6)
    return out


def audit_staged_prompts(lake: Lake, st: StagedGold, pool: VerifierPool | None = None) -> Outcome:
    """The gate over a staged gold partition of RL prompts, each row's source read from its silver partition."""
    gold = lake.read_table(st.gold_staged, columns=["record_id", "answer", "verifier", "verifier_args"])
    silver = lake.read_table(lake.path(catalog.silver(st.regime).part(st.date)), columns=["record_id", "source"])
    source = dict(zip(silver["record_id"].to_pylist(), silver["source"].to_pylist(), strict=True))
    rows = [{**r, "source": source.get(r["record_id"])} for r in gold.to_pylist()]
    return verifier_gate(rows, pool or shared_pool(), f"gold_{st.regime} {st.date}")
