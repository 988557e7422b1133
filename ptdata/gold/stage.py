"""gold_<regime>(D): a silver partition rendered through the chat template, tokenized with its loss mask, and,
by the regime's gold layout, packed best-fit decreasing (chat, document) or laid out one record a row (pair,
prompt). Records that cannot be used go to gold_rejections with their reason. The tokenizer is
ptdata/gold/lake_tokenizer.py's.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ptdata.core import catalog
from ptdata.core.catalog import (
    GOLD_PACKED_SCHEMA,
    GOLD_REJECTIONS_SCHEMA,
    gold_schema,
)
from ptdata.core.config import LoadedConfig
from ptdata.core.executor import INLINE, Executor
from ptdata.core.groups import by_size
from ptdata.core.lake import Lake, TablePartition
from ptdata.core.regimes import regime as regime_spec
from ptdata.core.writer import RowGroupWriter
from ptdata.gold.lake_tokenizer import TOKENIZER_META, GoldInputError
from ptdata.gold.pack import best_fit_plan, position_ids, truncate_sequence
from ptdata.gold.spill import CHUNK_SCHEMA, Spill, Stream, spill_batch
from ptdata.gold.templates import ChatTemplate, LossOn, chat_template, encode_conversations, plain_messages
from ptdata.gold.tokenize import (
    LoadedTokenizer,
    Segment,
    encode_segments,
    special_in_content,
)

GOLD_CODE_VERSION = "1"
# silver records read and tokenized at a time; packed rows made at a time (of sequences worth as many full rows)
BATCH_ROWS = 512
# Arrow bytes of gold rows (or rejections) buffered before they are written as one row group
ROW_GROUP_BYTES = 16 << 20
# packing's chunk files open at once
MAX_CHUNK_FILES = 128
# spilled sequences sent to their chunk files at a time: a write per chunk per group costs ~0.3 ms whatever its
# size, and each spill batch holds sequences of every chunk (1M records: 93 chunks, 1,953 batches)
SPILL_GROUP_BYTES = 64 << 20


# ------------------------------------------------------------------------------------------------ gold


@dataclass
class StagedGold:
    regime: str
    date: dt.date
    gold: TablePartition
    rejections: TablePartition
    gold_staged: str
    rejections_staged: str
    tokenizer_sha256: str
    silver_rows: int = 0
    rows: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    capacity: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    # tokens of each sequence (the longer side of a pair), in silver order: 4 bytes a record
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    truncated: int = 0  # records cut to seq_len (packing.overlong: truncate)


def _text_segments(text: str, eos: str) -> list[Segment]:
    return [Segment(text, True, content=True), Segment(eos, True)]


def _append(rows: dict[str, list], **values: Any) -> None:
    """One row onto column lists."""
    for name, value in values.items():
        rows[name].append(value)


def _reject(rows: dict[str, list], rec: dict[str, Any], regime: str, reason: str, detail: str) -> None:
    _append(
        rows,
        record_id=rec["record_id"],
        source=rec["source"],
        regime=regime,
        date=rec["date"],
        reason=reason,
        detail=detail,
    )


def stage_gold(
    lake: Lake,
    cfg: LoadedConfig,
    regime: str,
    date: dt.date,
    stage_id: str,
    tok: LoadedTokenizer,
    batch_rows: int = BATCH_ROWS,
    row_group_bytes: int = ROW_GROUP_BYTES,
    executor: Executor = INLINE,
) -> StagedGold:
    """Stage gold_<regime> and its gold_rejections part for one partition, in bounded memory: silver is read
    and tokenized `batch_rows` records at a time, a task per silver row group on the executor's workers (results
    taken in row-group order), packed rows are made about `batch_rows` at a time, and the
    staged files are written in row groups of about `row_group_bytes`. Neither changes the rows, only how they
    are split into row groups."""
    spec = regime_spec(regime)
    silver = catalog.silver(regime).part(date)
    if not lake.exists(silver):
        raise GoldInputError(f"gold_{regime} {date}: silver_{regime} is not materialized for {date}")
    gold = catalog.gold(regime).part(date)
    rejections = catalog.GOLD_REJECTIONS.part(date, regime)
    st = StagedGold(
        regime,
        date,
        gold,
        rejections,
        lake.staged_path(gold, stage_id),
        lake.staged_path(rejections, stage_id),
        tok.sha256(),
    )
    packing = cfg.pipeline.packing
    schema = gold_schema(regime).with_metadata({TOKENIZER_META: st.tokenizer_sha256.encode()})
    path = lake.path(silver)
    work = _GoldWork(lake, cfg, regime, path, tok, batch_rows, replace(st))
    lengths: list[np.ndarray] = []
    with (
        lake.parquet_writer(st.gold_staged, schema) as gold_w,
        lake.parquet_writer(st.rejections_staged, GOLD_REJECTIONS_SCHEMA) as reject_w,
        tempfile.TemporaryDirectory(prefix="ptdata-gold-") as tmp,
        RowGroupWriter(gold_w, gold_schema(regime), row_group_bytes) as out,
        RowGroupWriter(reject_w, GOLD_REJECTIONS_SCHEMA, row_group_bytes) as rejected_out,
    ):
        spill = Spill(Path(tmp) / "sequences.arrow") if spec.packs else None
        groups = range(lake.parquet_file(path).num_row_groups)
        for done in executor.map(_tokenize_row_group, work, groups):
            _add_counts(st, done.counts)
            for sequences, rows, rejected in done.batches:
                if spill is not None:
                    spill.add(sequences)
                else:
                    out.add(rows)
                rejected_out.add(rejected)
            lengths += done.lengths
        if spill is not None:
            spill.close()
            lengths.append(spill.lengths)
            _pack(spill, packing.seq_len, date, out, st, Path(tmp), batch_rows * packing.seq_len)
        out.close()
        rejected_out.close()
    st.lengths = np.concatenate([np.zeros(0, dtype=np.int32), *lengths])
    return st


@dataclass(frozen=True)
class _GoldWork:
    """What each silver row group's task needs (the executor ships it once to every worker)."""

    lake: Lake
    cfg: LoadedConfig
    regime: str
    silver: str
    tok: LoadedTokenizer
    batch_rows: int
    counts: StagedGold  # the partition's, before any record: each task counts into a copy


@dataclass
class _Tokenized:
    """A silver row group tokenized: per batch of `batch_rows` records, the sequences to pack (chat, document) or
    the gold rows (pair, prompt), and the rejections; the row layouts' sequence lengths; what it counted."""

    counts: StagedGold
    batches: list[tuple[pa.RecordBatch | None, pa.Table | None, pa.Table]]
    lengths: list[np.ndarray]


def _tokenize_row_group(work: _GoldWork, group: int) -> _Tokenized:
    """Render, tokenize and mask one silver row group, `batch_rows` records at a time (a task of the executor)."""
    regime, tok, cfg = work.regime, work.tok, work.cfg
    spec = regime_spec(regime)
    template = chat_template(cfg.pipeline.tokenizer.chat_template, tok)
    st = replace(work.counts, reasons=Counter())
    done = _Tokenized(st, [], [])
    # only what gold reads of a record: silver's other columns would be turned into Python objects for nothing
    columns = ["record_id", "source", "date", *spec.column_names]
    for batch in work.lake.parquet_file(work.silver).read_row_group(group, columns=columns).to_batches(work.batch_rows):
        st.silver_rows += batch.num_rows
        rejected: dict[str, list] = {name: [] for name in GOLD_REJECTIONS_SCHEMA.names}
        if spec.packs:
            sequences = spill_batch(_tokenize_packable(regime, batch, template, tok, cfg, rejected, st))
            done.batches.append((sequences, None, pa.table(rejected, schema=GOLD_REJECTIONS_SCHEMA)))
            continue
        records = batch.to_pylist()
        rows = _RowBatch(records, template, tok, cfg, st, {n: [] for n in gold_schema(regime).names}, rejected)
        (_tokenize_pairs if spec.gold_layout == "pair" else _tokenize_prompts)(rows)
        table = pa.table(rows.rows, schema=gold_schema(regime))
        done.batches.append((None, table, pa.table(rejected, schema=GOLD_REJECTIONS_SCHEMA)))
        done.lengths.append(np.asarray(rows.lengths, dtype=np.int32))
    return done


def _add_counts(st: StagedGold, counts: StagedGold) -> None:
    st.silver_rows += counts.silver_rows
    st.rows += counts.rows
    st.tokens += counts.tokens
    st.trained_tokens += counts.trained_tokens
    st.truncated += counts.truncated
    st.reasons.update(counts.reasons)


def _reject_special(rejected: dict[str, list], rec: dict[str, Any], regime: str, token: str, st: StagedGold) -> None:
    _reject(rejected, rec, regime, "special_token_in_content", f"a message holds the text of {token}")
    st.reasons["special_token_in_content"] += 1


def _encode(
    records: list[dict[str, Any]],
    renderings: list[list[list[Segment]]],
    tok: LoadedTokenizer,
    regime: str,
    rejected: dict[str, list],
    st: StagedGold,
) -> list[tuple[dict[str, Any], list[tuple[np.ndarray, np.ndarray]]]]:
    """Each record with the (ids, mask) of each of its renderings, all encoded in one batch; a record whose
    message content holds a special token's text is rejected instead (see special_in_content)."""
    kept = []
    for rec, rendered in zip(records, renderings, strict=True):
        token = next((t for r in rendered if (t := special_in_content(r, tok.special_tokens))), None)
        if token is None:
            kept.append((rec, rendered))
            continue
        _reject_special(rejected, rec, regime, token, st)
    encoded = encode_segments(tok.tokenizer, [r for _, rendered in kept for r in rendered])
    out, k = [], 0
    for rec, rendered in kept:
        out.append((rec, encoded[k : k + len(rendered)]))
        k += len(rendered)
    return out


def _encode_chat_batch(
    batch: pa.RecordBatch,
    template: ChatTemplate,
    tok: LoadedTokenizer,
    loss_on: LossOn,
    regime: str,
    rejected: dict[str, list],
    st: StagedGold,
) -> list[tuple[dict[str, Any], list[tuple[np.ndarray, np.ndarray]]]] | None:
    """`_encode` of a batch of conversations by `encode_conversations` (Arrow's string kernels, not a record at a
    time): the same ids, masks and rejections. None where that does not apply."""
    found = encode_conversations(template, tok, batch.column(regime_spec(regime).message_fields[0]), loss_on)
    if found is None:
        return None
    kept, encoded, special = found
    records = batch.select(["record_id", "source", "date"]).to_pylist()
    for i, token in special.items():
        _reject_special(rejected, records[i], regime, token, st)
    return [(records[i], [e]) for i, e in zip(kept, encoded, strict=True)]


def _tokenize_packable(
    regime: str,
    batch: pa.RecordBatch,
    template: ChatTemplate,
    tok: LoadedTokenizer,
    cfg: LoadedConfig,
    rejected: dict[str, list],
    st: StagedGold,
) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
    """(record_id, ids, mask, truncated) of each record of a batch that can be packed; the others rejected."""
    loss_on = cfg.pipeline.tokenizer.loss_on
    seq_len = cfg.pipeline.packing.seq_len
    spec = regime_spec(regime)
    encoded = (
        _encode_chat_batch(batch, template, tok, loss_on, regime, rejected, st) if spec.gold_layout == "chat" else None
    )
    if encoded is None:
        records = batch.to_pylist()
        if spec.gold_layout == "chat":
            renderings = [[template.segments(plain_messages(r[spec.message_fields[0]]), loss_on)] for r in records]
        else:  # a document: its text columns one after another, then the end of text
            renderings = [[_text_segments("\n\n".join(r[f] for f in spec.string_fields), tok.eos)] for r in records]
        encoded = _encode(records, renderings, tok, regime, rejected, st)
    truncate = cfg.pipeline.packing.overlong == "truncate"
    out = []
    for rec, [(ids, mask)] in encoded:
        cut = None
        if len(ids) > seq_len and truncate and mask.any():
            # a document keeps its start, a conversation its last turns (see truncate_sequence)
            keep = "first" if spec.gold_layout == "document" else "last"
            cut = truncate_sequence(ids, mask, seq_len, keep, tok.token_id(tok.eos))
        if not mask.any():
            reason, detail = "no_trained_tokens", "the template trains no token of this record"
        elif cut is not None:
            out.append((rec["record_id"], *cut, True))
            st.truncated += 1
            continue
        elif len(ids) > seq_len:
            reason, detail = "too_long", f"{len(ids)} tokens, more than packing.seq_len {seq_len}"
        else:
            out.append((rec["record_id"], ids, mask, False))
            continue
        _reject(rejected, rec, regime, reason, detail)
        st.reasons[reason] += 1
    return out


def _pack(
    spill: Spill, seq_len: int, date: dt.date, out: RowGroupWriter, st: StagedGold, tmp: Path, chunk_tokens: int
) -> None:
    """Pack the spilled sequences best-fit decreasing and write the rows in order, in bounded memory.

    The plan (row and position of every sequence) needs only lengths and keys. It ranks the sequences in output
    order; consecutive ranks are cut into chunks of about `chunk_tokens` tokens. One pass over the spill writes
    each sequence to its chunk's file; then each chunk in turn is read, put in rank order and made into rows (a
    row cut by a chunk's end is finished with the next chunk). At most MAX_CHUNK_FILES files are open at once:
    a partition with more chunks takes one pass over the spill per MAX_CHUNK_FILES of them."""
    lengths = spill.lengths
    row_of, pos_of = best_fit_plan(lengths, spill.keys, seq_len)
    spill.keys = np.zeros(0, dtype="S1")  # the plan was all they were kept for
    order = np.lexsort((pos_of, row_of))
    del pos_of
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    chunk_of_rank = ((np.cumsum(lengths[order], dtype=np.int64) - 1) // chunk_tokens).astype(np.int32)
    chunks = int(chunk_of_rank[-1]) + 1 if len(order) else 0
    chunk = chunk_of_rank[rank]
    del order, chunk_of_rank
    carry = None
    for first in range(0, chunks, MAX_CHUNK_FILES):
        last = min(first + MAX_CHUNK_FILES, chunks)
        files: dict[int, Stream] = {}
        seq = 0
        for group in by_size(spill.batches(), lambda b: b.nbytes, SPILL_GROUP_BYTES):
            batch = pa.Table.from_batches(group)
            k = chunk[seq : seq + batch.num_rows]
            by_chunk = np.argsort(k, kind="stable")
            k = k[by_chunk]
            placed = batch.append_column("rank", pa.array(rank[seq : seq + batch.num_rows]))
            placed = placed.append_column("row", pa.array(row_of[seq : seq + batch.num_rows])).take(by_chunk)
            seq += batch.num_rows
            for c in range(max(first, int(k[0])), min(last, int(k[-1]) + 1)):
                a, b = np.searchsorted(k, [c, c + 1])
                if b > a:
                    if c not in files:
                        files[c] = Stream(tmp / f"chunk-{c}.arrow", CHUNK_SCHEMA)
                    files[c].write(placed.slice(a, b - a))
        for c in sorted(files):
            files[c].close()
            seqs = pa.Table.from_batches(list(files[c].batches()), schema=CHUNK_SCHEMA)
            seqs = seqs.take(np.argsort(seqs.column("rank").to_numpy()))
            files[c].path.unlink()
            if carry is not None:
                seqs = pa.concat_tables([carry, seqs])
            rows = seqs.column("row").to_numpy()
            cut = int(np.searchsorted(rows, rows[-1]))  # the last row may go on in the next chunk
            out.add(_packed_rows(seqs.slice(0, cut), date, st))
            carry = seqs.slice(cut)
    if carry is not None:
        out.add(_packed_rows(carry, date, st))
    st.capacity = st.rows * seq_len


def _packed_rows(seqs: pa.Table, date: dt.date, st: StagedGold) -> pa.Table:
    """The packed rows of sequences given in plan order, each row's sequences together; counted into `st`."""
    seqs = seqs.combine_chunks()
    if not seqs.num_rows:
        return GOLD_PACKED_SCHEMA.empty_table()
    row = seqs.column("row").to_numpy()
    ids, mask = seqs.column("ids").chunk(0), seqs.column("mask").chunk(0)
    record_id = seqs.column("record_id").chunk(0).cast(pa.string())
    truncated = seqs.column("truncated").to_numpy(zero_copy_only=False)
    lens = pc.list_value_length(ids).to_numpy().astype(np.int32)
    # offsets, per row, into the row's sequences, the row's tokens and its truncated records
    seq_off = np.flatnonzero(np.r_[True, row[1:] != row[:-1], True]).astype(np.int32)
    tok_off = np.r_[0, np.cumsum(lens, dtype=np.int64)][seq_off].astype(np.int32)
    cut_off = np.r_[0, np.cumsum(truncated, dtype=np.int64)][seq_off].astype(np.int32)
    flat_ids, flat_mask = ids.flatten(), mask.flatten()
    trained = np.add.reduceat(flat_mask.to_numpy().astype(np.int64), tok_off[:-1])
    tokens = np.diff(tok_off)
    n = len(tokens)
    st.rows += n
    st.tokens += int(tokens.sum())
    st.trained_tokens += int(trained.sum())
    t = GOLD_PACKED_SCHEMA.field

    def lists(offsets: np.ndarray, values: pa.Array, name: str) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values, type=t(name).type)

    return pa.table(
        [
            lists(tok_off, flat_ids, "input_ids"),
            lists(tok_off, flat_mask, "loss_mask"),
            lists(tok_off, pa.array(position_ids(lens)), "position_ids"),
            lists(seq_off, pa.array(lens), "seq_lens"),
            lists(seq_off, record_id, "record_ids"),
            lists(cut_off, record_id.filter(pa.array(truncated)), "truncated"),
            pa.array([date] * n, type=pa.date32()),
            pa.array(tokens, type=pa.int32()),
            pa.array(trained, type=pa.int32()),
        ],
        schema=GOLD_PACKED_SCHEMA,
    )


@dataclass
class _RowBatch:
    """A batch of silver records laid out one a row (pairs, prompts), and where its rows, rejections and sequence
    lengths go."""

    records: list[dict[str, Any]]
    template: ChatTemplate
    tok: LoadedTokenizer
    cfg: LoadedConfig
    st: StagedGold
    rows: dict[str, list]
    rejected: dict[str, list]
    lengths: list[int] = field(default_factory=list)


def _tokenize_pairs(b: _RowBatch) -> None:
    loss_on, seq_len = b.cfg.pipeline.tokenizer.loss_on, b.cfg.pipeline.packing.seq_len
    renderings = []
    for r in b.records:
        prompt = plain_messages(r["prompt"])
        renderings.append(
            [
                b.template.segments(prompt + plain_messages(r["chosen"]), loss_on),
                b.template.segments(prompt + plain_messages(r["rejected"]), loss_on),
                b.template.segments(prompt, loss_on, generation_prompt=True),
            ]
        )
    for rec, [(c_ids, c_mask), (r_ids, r_mask), (p_ids, _)] in _encode(
        b.records, renderings, b.tok, b.st.regime, b.rejected, b.st
    ):
        longest = max(len(c_ids), len(r_ids))
        if not c_mask.any() or not r_mask.any():
            reason, detail = "no_trained_tokens", "chosen or rejected trains no token"
        elif longest > seq_len:
            reason, detail = "too_long", f"{longest} tokens, more than packing.seq_len {seq_len}"
        else:
            _append(
                b.rows,
                record_id=rec["record_id"],
                record_ids=[rec["record_id"]],
                date=rec["date"],
                chosen_input_ids=c_ids,
                chosen_loss_mask=c_mask,
                rejected_input_ids=r_ids,
                rejected_loss_mask=r_mask,
                prompt_tokens=len(p_ids),
            )
            b.st.rows += 1
            b.st.tokens += len(c_ids) + len(r_ids)
            b.st.trained_tokens += int(c_mask.sum() + r_mask.sum())
            b.lengths.append(longest)
            continue
        _reject(b.rejected, rec, b.st.regime, reason, detail)
        b.st.reasons[reason] += 1


def _tokenize_prompts(b: _RowBatch) -> None:
    max_prompt = b.cfg.pipeline.packing.max_prompt_tokens
    spec = regime_spec(b.st.regime)
    prompt = spec.message_fields[0]
    # the regime's other columns go along for the verifier (rlvr: answer, verifier, verifier_args)
    passed = [n for n in spec.column_names if n not in spec.message_fields]
    renderings = [[b.template.segments(plain_messages(r[prompt]), generation_prompt=True)] for r in b.records]
    for rec, [(ids, _)] in _encode(b.records, renderings, b.tok, b.st.regime, b.rejected, b.st):
        if len(ids) > max_prompt:
            _reject(b.rejected, rec, b.st.regime, "prompt_too_long", f"{len(ids)} tokens, more than {max_prompt}")
            b.st.reasons["prompt_too_long"] += 1
            continue
        _append(
            b.rows,
            record_id=rec["record_id"],
            record_ids=[rec["record_id"]],
            date=rec["date"],
            prompt_ids=ids,
            **{n: rec[n] for n in passed},
        )
        b.st.rows += 1
        b.st.tokens += len(ids)
        b.lengths.append(len(ids))
