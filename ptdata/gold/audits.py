"""Gold audits, run on the staged files before publish: they read the staged rows back and check every row and
every sequence, not the counts the staging kept; columnar, over numpy views of each row group's list columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake, parquet_list
from ptdata.core.outcome import Outcome
from ptdata.core.regimes import regime as regime_spec
from ptdata.gold.stage import StagedGold
from ptdata.gold.templates import chat_template
from ptdata.gold.tokenize import LoadedTokenizer

_IDS = ("input_ids", "chosen_input_ids", "rejected_input_ids", "prompt_ids")


def _flat(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of a list column, as numpy arrays."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = column.offsets.to_numpy()
    return offsets - offsets[0], column.values.slice(offsets[0], offsets[-1] - offsets[0]).to_numpy()


@dataclass
class _Sequences:
    """Sequences laid out in flat token arrays: [start, end) of each, and the row it is in."""

    ids: np.ndarray
    mask: np.ndarray
    start: np.ndarray
    end: np.ndarray
    row: np.ndarray


def _packed(group: pa.Table, found: list[tuple[int, int, int, str]], seq_len: int) -> tuple[_Sequences, np.ndarray]:
    """A packed row group's structural problems as (row, 0, check, message), and its sequences and row fills."""
    (id_off, ids), (mask_off, mask), (pos_off, pos), (len_off, lens) = (
        _flat(group[name]) for name in ("input_ids", "loss_mask", "position_ids", "seq_lens")
    )
    n_ids, lens = np.diff(id_off), lens.astype(np.int64)
    row_of_seq = np.repeat(np.arange(group.num_rows), np.diff(len_off))
    sums = np.bincount(row_of_seq, weights=lens, minlength=group.num_rows).astype(np.int64)
    agree = (n_ids == np.diff(mask_off)) & (n_ids == np.diff(pos_off)) & (n_ids == sums)
    for r in np.flatnonzero(~agree):
        found.append((r, 0, 0, "input_ids, loss_mask, position_ids and seq_lens disagree in length"))
    for r in np.flatnonzero(n_ids > seq_len):
        found.append((r, 0, 1, f"{n_ids[r]} tokens, more than seq_len {seq_len}"))
    before = np.cumsum(lens) - lens  # tokens of the sequences before each, over the whole row group
    in_row = before - before[len_off[:-1][row_of_seq]]  # a row's first sequence starts it
    restart = in_row < np.diff(pos_off)[row_of_seq]
    bad = pos[pos_off[row_of_seq[restart]] + in_row[restart]] != 0
    for r in np.unique(row_of_seq[restart][bad]):
        found.append((r, 0, 2, "position_ids do not restart at 0 where a sequence starts"))
    start = id_off[row_of_seq] + in_row
    end = np.minimum(start + lens, id_off[row_of_seq + 1])
    return _Sequences(ids, mask, start, end, row_of_seq), n_ids


def _sequence_problems(s: _Sequences, ends: np.ndarray, found: list[tuple[int, int, int, str]], seq0: int) -> None:
    """Each sequence's mask problems as (row, sequence, check, message): no trained token, a last trained token
    that is not an end of turn, a mask value other than 0 and 1."""
    trained = np.flatnonzero(s.mask)
    k = np.searchsorted(trained, s.end, "left") - 1
    last = np.where(k >= 0, trained[np.maximum(k, 0)] if len(trained) else -1, -1)
    has = (last >= s.start) & (s.end > s.start)
    for i in np.flatnonzero(~has):
        found.append((s.row[i], seq0 + i, 0, "a sequence with no trained token"))
    for i in np.flatnonzero(has & ~np.isin(s.ids[np.maximum(last, 0)], ends)):
        found.append((s.row[i], seq0 + i, 0, "a sequence whose last trained token is not an end of turn"))
    odd = np.flatnonzero((s.mask != 0) & (s.mask != 1))
    at = np.searchsorted(s.start, odd, "right") - 1
    for i in np.unique(at[(at >= 0) & (odd < s.end[np.maximum(at, 0)])]):
        found.append((s.row[i], seq0 + i, 1, "a loss mask value other than 0 and 1"))


@dataclass
class _Problems:
    """The problems an audit found: how many, and the first few (a broken partition has one a row)."""

    first: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, problem: str) -> None:
        self.count += 1
        if len(self.first) < 5:
            self.first.append(problem)


def audit_staged(lake: Lake, cfg: LoadedConfig, st: StagedGold, tok: LoadedTokenizer) -> dict[str, Outcome]:
    seq_len = cfg.pipeline.packing.seq_len
    vocab = tok.vocab_size
    template = chat_template(cfg.pipeline.tokenizer.chat_template, tok)
    # a document ends with the end of text, a conversation's trained turns with the template's end of turn
    document = regime_spec(st.regime).gold_layout == "document"
    ends = np.array(sorted({tok.token_id(t) for t in ((tok.eos,) if document else template.end_tokens(tok))}))
    token_problems, mask_problems = _Problems(), _Problems()
    packed = regime_spec(st.regime).packs
    fills: list[np.ndarray] = []
    pf = lake.parquet_file(st.gold_staged)
    first_row = 0
    # row group by row group, column arrays only: a packed row's tokens as Python objects would take ~100 bytes each
    for g in range(pf.num_row_groups):
        group = pf.read_row_group(g)
        tokens: list[tuple[int, int, int, str]] = []
        masks: list[tuple[int, int, int, str]] = []
        if packed:
            seqs, n_ids = _packed(group, tokens, seq_len)
            fills.append(n_ids)
            _sequence_problems(seqs, ends, masks, 0)
        elif regime_spec(st.regime).gold_layout == "pair":
            for side, seq0 in (("chosen", 0), ("rejected", group.num_rows)):
                (off, ids), (_, mask) = _flat(group[f"{side}_input_ids"]), _flat(group[f"{side}_loss_mask"])
                rows = np.arange(group.num_rows)
                _sequence_problems(_Sequences(ids, mask, off[:-1], off[1:], rows), ends, masks, seq0)
        for name in (n for n in _IDS if n in group.column_names):
            off, ids = _flat(group[name])
            outside = np.flatnonzero((ids >= vocab) | (ids < 0))
            for r in np.unique(np.searchsorted(off, outside, "right") - 1):
                tokens.append((r, 0, 3, f"a token id outside the vocabulary of {vocab}"))
        first_ids = group["record_ids"].combine_chunks()
        for problems, found in ((token_problems, tokens), (mask_problems, masks)):
            for r, _, _, message in sorted(set(found)):
                problems.add(f"row {first_row + r} ({first_ids[int(r)][0]}): {message}")
        first_row += group.num_rows
    fills_all = np.concatenate([np.zeros(0, dtype=np.int64), *fills]).astype(np.int32)
    out = {
        "tokens_valid": _outcome("tokens_valid", st, token_problems, {"vocab_size": vocab, "seq_len": seq_len}),
        "masks": _outcome("masks", st, mask_problems, {"end_tokens": ends.tolist()}),
        "packing_efficiency": _efficiency(st, fills_all, seq_len, cfg.pipeline.packing.min_efficiency),
        "accounting": _accounting(lake, st),
    }
    return out


def _outcome(name: str, st: StagedGold, problems: _Problems, meta: dict) -> Outcome:
    first = problems.first
    desc = f"{name} failed on gold_{st.regime} {st.date}: {first[0]}" if first else ""
    return Outcome(name, not problems.count, {**meta, "problems": first, "count": problems.count}, desc)


def packing_efficiency(fills: Sequence[int] | np.ndarray, seq_len: int) -> float:
    """Real tokens / capacity over the rows, the least filled one left out: a partition's remainder has to go
    somewhere, and a small partition would otherwise fail for its last row alone."""
    if len(fills) < 2:
        return 1.0
    rest = np.sort(np.asarray(fills, dtype=np.int64))[1:]
    return int(rest.sum()) / (len(rest) * seq_len)


def _efficiency(st: StagedGold, fills: np.ndarray, seq_len: int, floor: float) -> Outcome:
    if not regime_spec(st.regime).packs:
        return Outcome("packing_efficiency", True, {"packed": False})
    eff = packing_efficiency(fills, seq_len)
    overall = int(fills.sum()) / (len(fills) * seq_len) if len(fills) else 1.0
    ok = eff >= floor
    desc = (
        "" if ok else f"gold_{st.regime} {st.date}: packing efficiency {eff:.4f}, below packing.min_efficiency {floor}"
    )
    return Outcome(
        "packing_efficiency", ok, {"efficiency": round(eff, 6), "all_rows": round(overall, 6), "floor": floor}, desc
    )


def _accounting(lake: Lake, st: StagedGold) -> Outcome:
    """Each silver record is in exactly one gold row or in gold_rejections.

    One DuckDB query joins the record ids of the three files, counted per id, under a memory limit above which
    it spills: memory stays bounded whatever the partition's size (Python sets of ids would grow with it)."""
    silver = lake.path(catalog.silver(st.regime).part(st.date))
    with lake.duckdb(memory_limit="256MB", threads=1) as con:
        dup, both, lost, extra, in_silver, in_rows, rejected = con.sql(
            f"""
            with kept as (
                select id, count(*) as n
                from (select unnest(record_ids) as id from read_parquet({parquet_list([st.gold_staged])}))
                group by id
            ),
            rejected as (
                select record_id as id, count(*) as n from read_parquet({parquet_list([st.rejections_staged])})
                group by id
            ),
            silver as (select distinct record_id as id from read_parquet({parquet_list([silver])})),
            ids as (
                select kept.n as kept, rejected.n as rejected, silver.id is not null as in_silver
                from kept full join rejected on kept.id = rejected.id
                full join silver on coalesce(kept.id, rejected.id) = silver.id
            )
            select
                coalesce(sum(kept - 1), 0),
                count(*) filter (where kept is not null and rejected is not null),
                count(*) filter (where in_silver and kept is null and rejected is null),
                count(*) filter (where not in_silver),
                count(*) filter (where in_silver),
                count(kept),
                coalesce(sum(rejected), 0)
            from ids
            """
        ).fetchone()
    problems = _Problems()
    if dup:
        problems.add(f"{dup} records in more than one row")
    if both:
        problems.add(f"{both} records both in a row and rejected")
    if lost:
        problems.add(f"{lost} silver records in neither gold nor gold_rejections")
    if extra:
        problems.add(f"{extra} records that are not in silver")
    meta = {"silver": int(in_silver), "in_rows": int(in_rows), "rejected": int(rejected)}
    return _outcome("accounting", st, problems, meta)
