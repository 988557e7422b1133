"""Gold audits, run on the staged files before publish: they read the staged rows back and check every row,
not the counts the staging kept."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from pyarrow import ListArray

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake, parquet_list
from ptdata.core.outcome import Outcome
from ptdata.core.regimes import regime as regime_spec
from ptdata.gold.stage import StagedGold
from ptdata.gold.templates import chat_template
from ptdata.gold.tokenize import LoadedTokenizer

# rows audited at a time: a packed row's tokens as Python objects take ~100 bytes each, so this bounds memory
AUDIT_BATCH_ROWS = 256
# list columns read as numpy arrays, not Python lists
_ARRAYS = (
    "input_ids",
    "loss_mask",
    "position_ids",
    "chosen_input_ids",
    "chosen_loss_mask",
    "rejected_input_ids",
    "rejected_loss_mask",
    "prompt_ids",
)
_IDS = ("input_ids", "chosen_input_ids", "rejected_input_ids", "prompt_ids")


def _rows(lake: Lake, path: str) -> Iterator[dict]:
    """The rows of a gold file, AUDIT_BATCH_ROWS at a time, with the token columns as numpy arrays."""
    pf = lake.parquet_file(path)
    # row group by row group: iter_batches reads ahead and holds far more than one batch
    for batch in (b for g in range(pf.num_row_groups) for b in pf.read_row_group(g).to_batches(AUDIT_BATCH_ROWS)):
        arrays = [name for name in batch.schema.names if name in _ARRAYS]
        split = {name: _split(batch.column(name)) for name in arrays}
        for i, row in enumerate(batch.drop_columns(arrays).to_pylist()):
            yield {**row, **{name: parts[i] for name, parts in split.items()}}


def _split(column: ListArray) -> list[np.ndarray]:
    offsets, values = column.offsets.to_numpy(), column.values.to_numpy()
    return [values[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]


def _sequences(regime: str, row: dict) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, mask) of every trained sequence of a gold row."""
    spec = regime_spec(regime)
    if spec.packs:
        ids, mask = row["input_ids"], row["loss_mask"]
        bounds = np.cumsum([0, *row["seq_lens"]])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            yield ids[a:b], mask[a:b]
    elif spec.gold_layout == "pair":
        for side in ("chosen", "rejected"):
            yield row[f"{side}_input_ids"], row[f"{side}_loss_mask"]


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
    ends = {tok.token_id(t) for t in ((tok.eos,) if document else template.end_tokens(tok))}
    token_problems, mask_problems = _Problems(), _Problems()
    packed = regime_spec(st.regime).packs
    fills = np.zeros(lake.parquet_file(st.gold_staged).metadata.num_rows if packed else 0, dtype=np.int32)
    for n, row in enumerate(_rows(lake, st.gold_staged)):
        where = f"row {n} ({row['record_ids'][0]})"
        if packed:
            ids, mask, pos = row["input_ids"], row["loss_mask"], row["position_ids"]
            if not len(ids) == len(mask) == len(pos) == sum(row["seq_lens"]):
                token_problems.add(f"{where}: input_ids, loss_mask, position_ids and seq_lens disagree in length")
            if len(ids) > seq_len:
                token_problems.add(f"{where}: {len(ids)} tokens, more than seq_len {seq_len}")
            starts = np.cumsum([0, *row["seq_lens"][:-1]])
            if (pos[starts[starts < len(pos)]] != 0).any():
                token_problems.add(f"{where}: position_ids do not restart at 0 where a sequence starts")
            fills[n] = len(ids)
        all_ids = [row[name] for name in _IDS if name in row and len(row[name])]
        if all_ids and (max(a.max() for a in all_ids) >= vocab or min(a.min() for a in all_ids) < 0):
            token_problems.add(f"{where}: a token id outside the vocabulary of {vocab}")
        for ids, mask in _sequences(st.regime, row):
            trained = np.flatnonzero(mask)
            if not len(trained):
                mask_problems.add(f"{where}: a sequence with no trained token")
            elif int(ids[trained[-1]]) not in ends:
                mask_problems.add(f"{where}: a sequence whose last trained token is not an end of turn")
            if set(np.unique(mask).tolist()) - {0, 1}:
                mask_problems.add(f"{where}: a loss mask value other than 0 and 1")
    out = {
        "tokens_valid": _outcome("tokens_valid", st, token_problems, {"vocab_size": vocab, "seq_len": seq_len}),
        "masks": _outcome("masks", st, mask_problems, {"end_tokens": sorted(ends)}),
        "packing_efficiency": _efficiency(st, fills, seq_len, cfg.pipeline.packing.min_efficiency),
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
