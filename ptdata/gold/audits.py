"""Gold audits, run on the staged files before publish: they read the staged rows back and check every row,
not the counts the staging kept."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake, TablePartition
from ptdata.core.outcome import Outcome
from ptdata.gold.stage import StagedGold
from ptdata.gold.templates import chat_template
from ptdata.gold.tokenize import LoadedTokenizer

GOLD_CHECKS = ("tokens_valid", "masks", "packing_efficiency", "accounting")


def _rows(lake: Lake, path: str) -> Iterator[dict]:
    pf = lake.parquet_file(path)
    for i in range(pf.num_row_groups):
        yield from pf.read_row_group(i).to_pylist()


def _sequences(regime: str, row: dict) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, mask) of every trained sequence of a gold row."""
    if regime in ("sft", "text"):
        ids, mask = np.asarray(row["input_ids"]), np.asarray(row["loss_mask"])
        bounds = np.cumsum([0, *row["seq_lens"]])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            yield ids[a:b], mask[a:b]
    elif regime == "preference":
        for side in ("chosen", "rejected"):
            yield np.asarray(row[f"{side}_input_ids"]), np.asarray(row[f"{side}_loss_mask"])


def audit_staged(lake: Lake, cfg: LoadedConfig, st: StagedGold, tok: LoadedTokenizer) -> dict[str, Outcome]:
    seq_len = cfg.pipeline.packing.seq_len
    vocab = tok.vocab_size
    template = chat_template(cfg.pipeline.tokenizer.chat_template, tok)
    ends = {tok.token_id(t) for t in (template.end_tokens(tok) if st.regime != "text" else (tok.eos,))}
    token_problems: list[str] = []
    mask_problems: list[str] = []
    fills: list[int] = []
    kept: list[str] = []
    for n, row in enumerate(_rows(lake, st.gold_staged)):
        kept += row["record_ids"]
        where = f"row {n} ({row['record_ids'][0]})"
        if st.regime in ("sft", "text"):
            ids, mask, pos = row["input_ids"], row["loss_mask"], row["position_ids"]
            if not len(ids) == len(mask) == len(pos) == sum(row["seq_lens"]):
                token_problems.append(f"{where}: input_ids, loss_mask, position_ids and seq_lens disagree in length")
            if len(ids) > seq_len:
                token_problems.append(f"{where}: {len(ids)} tokens, more than seq_len {seq_len}")
            starts = np.cumsum([0, *row["seq_lens"][:-1]])
            if any(pos[s] != 0 for s in starts if s < len(pos)):
                token_problems.append(f"{where}: position_ids do not restart at 0 where a sequence starts")
            fills.append(len(ids))
        all_ids = [
            x
            for name in ("input_ids", "chosen_input_ids", "rejected_input_ids", "prompt_ids")
            for x in row.get(name) or ()
        ]
        if all_ids and (max(all_ids) >= vocab or min(all_ids) < 0):
            token_problems.append(f"{where}: a token id outside the vocabulary of {vocab}")
        for ids, mask in _sequences(st.regime, row):
            trained = np.flatnonzero(mask)
            if not len(trained):
                mask_problems.append(f"{where}: a sequence with no trained token")
            elif int(ids[trained[-1]]) not in ends:
                mask_problems.append(f"{where}: a sequence whose last trained token is not an end of turn")
            if set(np.unique(mask).tolist()) - {0, 1}:
                mask_problems.append(f"{where}: a loss mask value other than 0 and 1")
    out = {
        "tokens_valid": _outcome("tokens_valid", st, token_problems, {"vocab_size": vocab, "seq_len": seq_len}),
        "masks": _outcome("masks", st, mask_problems, {"end_tokens": sorted(ends)}),
        "packing_efficiency": _efficiency(st, fills, seq_len, cfg.pipeline.packing.min_efficiency),
        "accounting": _accounting(lake, st, kept),
    }
    return out


def _outcome(name: str, st: StagedGold, problems: list[str], meta: dict) -> Outcome:
    desc = f"{name} failed on gold_{st.regime} {st.date}: {problems[0]}" if problems else ""
    return Outcome(name, not problems, {**meta, "problems": problems[:5], "count": len(problems)}, desc)


def packing_efficiency(fills: list[int], seq_len: int) -> float:
    """Real tokens / capacity over the rows, the least filled one left out: a partition's remainder has to go
    somewhere, and a small partition would otherwise fail for its last row alone."""
    if len(fills) < 2:
        return 1.0
    rest = sorted(fills)[1:]
    return sum(rest) / (len(rest) * seq_len)


def _efficiency(st: StagedGold, fills: list[int], seq_len: int, floor: float) -> Outcome:
    if st.regime not in ("sft", "text"):
        return Outcome("packing_efficiency", True, {"packed": False})
    eff = packing_efficiency(fills, seq_len)
    overall = sum(fills) / (len(fills) * seq_len) if fills else 1.0
    ok = eff >= floor
    desc = (
        "" if ok else f"gold_{st.regime} {st.date}: packing efficiency {eff:.4f}, below packing.min_efficiency {floor}"
    )
    return Outcome(
        "packing_efficiency", ok, {"efficiency": round(eff, 6), "all_rows": round(overall, 6), "floor": floor}, desc
    )


def _accounting(lake: Lake, st: StagedGold, kept: list[str]) -> Outcome:
    """Each silver record is in exactly one gold row or in gold_rejections."""
    silver = lake.read_table(lake.path(TablePartition("silver", f"silver_{st.regime}", st.date)), columns=["record_id"])
    rejected = lake.read_table(st.rejections_staged, columns=["record_id"]).column("record_id").to_pylist()
    ids = set(silver.column("record_id").to_pylist())
    problems = []
    if len(kept) != len(set(kept)):
        problems.append(f"{len(kept) - len(set(kept))} records in more than one row")
    if set(kept) & set(rejected):
        problems.append(f"{len(set(kept) & set(rejected))} records both in a row and rejected")
    if lost := ids - set(kept) - set(rejected):
        problems.append(f"{len(lost)} silver records in neither gold nor gold_rejections")
    if extra := (set(kept) | set(rejected)) - ids:
        problems.append(f"{len(extra)} records that are not in silver")
    meta = {"silver": len(ids), "in_rows": len(set(kept)), "rejected": len(rejected)}
    return _outcome("accounting", st, problems, meta)
