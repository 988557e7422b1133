"""Gold staging: the tokenizer, and each regime's gold partition, without Dagster (as curate.py is for silver).

- `stage_tokenizer`: the configured tokenizer (a tokenizer.json or an HF model folder), or ptdata's own
  byte-level BPE. That one is trained once, on the silver text in the lake when it is first built, and kept:
  re-materializing keeps the same file while its settings (vocab_size, code version) are unchanged, so the
  gold already built stays valid. It lives at `<lake>/gold/tokenizer/tokenizer.json` with a
  tokenizer_config.json (end-of-text token, chat template).
- `stage_gold`: a silver partition rendered through the chat template, tokenized with its loss mask, and packed
  (sft, text) or laid out one record a row (preference, rlvr). Records that cannot be used go to
  gold_rejections with their reason.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ptdata.core.catalog import (
    GOLD_PACKED_SCHEMA,
    GOLD_PREFERENCE_SCHEMA,
    GOLD_REJECTIONS_SCHEMA,
    gold_schema,
)
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.lake import Lake, TablePartition, partition_days
from ptdata.core.regimes import all_text
from ptdata.gold.pack import pack_best_fit, position_ids, truncate_sequence
from ptdata.gold.templates import ChatTemplate, chat_template
from ptdata.gold.tokenize import (
    EOS,
    LoadedTokenizer,
    Segment,
    encode_segments,
    load_tokenizer,
    special_in_content,
    train_bpe,
)

TOKENIZER_CODE_VERSION = "1"
GOLD_CODE_VERSION = "1"
TOKENIZER = TablePartition("gold", "tokenizer")
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# at most this much silver text trains ptdata's own tokenizer (BPE merges settle long before)
TRAIN_CHARS = 50_000_000
GOLD_SCHEMAS = {
    "sft": GOLD_PACKED_SCHEMA,
    "text": GOLD_PACKED_SCHEMA,
    "preference": GOLD_PREFERENCE_SCHEMA,
    "rlvr": gold_schema("rlvr"),
}
# the schema metadata key of a gold file naming the tokenizer it was built with
TOKENIZER_META = b"ptdata.tokenizer_sha256"


class GoldInputError(RuntimeError):
    """An input gold needs is missing or unusable; the message says which and what to do."""


def tokenizer_settings(cfg: LoadedConfig) -> dict[str, Any]:
    """What the tokenizer file depends on: the configured path's contents, or the trained one's settings."""
    tok = cfg.pipeline.tokenizer
    if tok.path is None:
        return {"trained": True, "vocab_size": tok.vocab_size, "code": TOKENIZER_CODE_VERSION}
    path = cfg.resolve(tok.path)
    files = [path] if path.is_file() else [path / TOKENIZER_FILE, path / TOKENIZER_CONFIG_FILE]
    return {"path": str(path), "files": stable_hash([f.read_text() for f in files if f.is_file()])}


def _silver_texts(lake: Lake, cfg: LoadedConfig) -> list[str]:
    """Silver text in (date, regime, row) order, up to TRAIN_CHARS: the deterministic training corpus."""
    texts, chars = [], 0
    today = dt.date.today() + dt.timedelta(days=1)
    for day in partition_days(cfg.pipeline.start_date, today):
        for regime in ("sft", "preference", "rlvr", "text"):
            part = TablePartition("silver", f"silver_{regime}", day)
            if not lake.exists(part):
                continue
            pf = lake.parquet_file(lake.path(part))
            for i in range(pf.num_row_groups):
                for rec in pf.read_row_group(i).to_pylist():
                    texts.append(all_text(regime, rec))
                    chars += len(texts[-1])
                    if chars >= TRAIN_CHARS:
                        return texts
    return texts


def stage_tokenizer(lake: Lake, cfg: LoadedConfig, stage_id: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Stage tokenizer.json and tokenizer_config.json; returns {file name: staged path} and what to report."""
    settings = tokenizer_settings(cfg)
    staged = {name: lake.staged_path(TOKENIZER, stage_id, name) for name in (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE)}
    tok = cfg.pipeline.tokenizer
    if tok.path is not None:
        source = load_tokenizer(cfg.resolve(tok.path))
        config = {"eos_token": source.eos, "bos_token": source.bos, "chat_template": source.chat_template}
        body, how = source.tokenizer.to_str(), f"copied from {cfg.resolve(tok.path)}"
        texts = []
    else:
        live = lake.path(TOKENIZER, TOKENIZER_CONFIG_FILE)
        kept = json.loads(lake.read_bytes(live)) if lake.fs.exists(live) else {}
        if kept.get("ptdata_settings") == settings and lake.exists(TOKENIZER, TOKENIZER_FILE):
            body, how = lake.read_bytes(lake.path(TOKENIZER, TOKENIZER_FILE)).decode(), "kept (trained earlier)"
            texts = []
        else:
            texts = _silver_texts(lake, cfg)
            if not texts:
                raise GoldInputError("no silver records to train the tokenizer on: materialize silver first")
            body = train_bpe(texts, tok.vocab_size).to_str()
            how = f"trained on {len(texts):,} silver records ({sum(map(len, texts)):,} characters)"
        config = {"eos_token": EOS, "bos_token": None, "chat_template": None}
    config["ptdata_settings"] = settings
    lake.write_bytes(staged[TOKENIZER_FILE], body.encode())
    lake.write_bytes(staged[TOKENIZER_CONFIG_FILE], json.dumps(config, indent=2, sort_keys=True).encode())
    return staged, {"how": how, "records": len(texts)}


def load_lake_tokenizer(lake: Lake, folder: str | None = None) -> LoadedTokenizer:
    """The tokenizer in a lake folder: the live one every gold table is built with, or a staged one."""
    folder = folder or lake.path(TOKENIZER, TOKENIZER_FILE).rsplit("/", 1)[0]
    if not lake.fs.exists(f"{folder}/{TOKENIZER_FILE}"):
        raise GoldInputError("the tokenizer is not materialized: materialize the tokenizer asset first")
    if lake.local:
        return load_tokenizer(Path(folder))
    with tempfile.TemporaryDirectory(prefix="ptdata-tokenizer-") as tmp:
        for name in (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE):
            (Path(tmp) / name).write_bytes(lake.read_bytes(f"{folder}/{name}"))
        return load_tokenizer(Path(tmp))


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
    lengths: list[int] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)  # records cut to seq_len (packing.overlong: truncate)


def _messages(value: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{"role": m["role"], "content": m["content"]} for m in value or ()]


def _text_segments(text: str, eos: str) -> list[Segment]:
    return [Segment(text, True, content=True), Segment(eos, True)]


def _reject(rows: dict[str, list], rec: dict[str, Any], regime: str, reason: str, detail: str) -> None:
    for name, value in (
        ("record_id", rec["record_id"]),
        ("source", rec["source"]),
        ("regime", regime),
        ("date", rec["date"]),
        ("reason", reason),
        ("detail", detail),
    ):
        rows[name].append(value)


def stage_gold(
    lake: Lake, cfg: LoadedConfig, regime: str, date: dt.date, stage_id: str, tok: LoadedTokenizer
) -> StagedGold:
    """Stage gold_<regime> and its gold_rejections part for one partition."""
    silver = TablePartition("silver", f"silver_{regime}", date)
    if not lake.exists(silver):
        raise GoldInputError(f"gold_{regime} {date}: silver_{regime} is not materialized for {date}")
    gold = TablePartition("gold", f"gold_{regime}", date)
    rejections = TablePartition("gold", "gold_rejections", date, regime)
    st = StagedGold(
        regime,
        date,
        gold,
        rejections,
        lake.staged_path(gold, stage_id),
        lake.staged_path(rejections, stage_id),
        tok.sha256(),
    )
    template = chat_template(cfg.pipeline.tokenizer.chat_template, tok)
    packing = cfg.pipeline.packing
    rejected: dict[str, list] = {name: [] for name in GOLD_REJECTIONS_SCHEMA.names}
    sequences: list[tuple[str, np.ndarray, np.ndarray]] = []
    out_rows: dict[str, list] = {name: [] for name in GOLD_SCHEMAS[regime].names}
    pf = lake.parquet_file(lake.path(silver))
    for i in range(pf.num_row_groups):
        records = pf.read_row_group(i).to_pylist()
        st.silver_rows += len(records)
        if regime in ("sft", "text"):
            sequences += _tokenize_packable(regime, records, template, tok, cfg, rejected, st)
        elif regime == "preference":
            _tokenize_pairs(records, template, tok, packing.seq_len, cfg, out_rows, rejected, st)
        else:
            _tokenize_prompts(records, template, tok, packing.max_prompt_tokens, out_rows, rejected, st)
    if regime in ("sft", "text"):
        _pack(sequences, packing.seq_len, date, out_rows, st)
    schema = GOLD_SCHEMAS[regime].with_metadata({TOKENIZER_META: st.tokenizer_sha256.encode()})
    with lake.parquet_writer(st.gold_staged, schema) as w:
        w.write_table(pa.table(out_rows, schema=schema))
    with lake.parquet_writer(st.rejections_staged, GOLD_REJECTIONS_SCHEMA) as w:
        w.write_table(pa.table(rejected, schema=GOLD_REJECTIONS_SCHEMA))
    return st


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
        _reject(rejected, rec, regime, "special_token_in_content", f"a message holds the text of {token}")
        st.reasons["special_token_in_content"] += 1
    encoded = encode_segments(tok.tokenizer, [r for _, rendered in kept for r in rendered])
    out, k = [], 0
    for rec, rendered in kept:
        out.append((rec, encoded[k : k + len(rendered)]))
        k += len(rendered)
    return out


def _tokenize_packable(
    regime: str,
    records: list[dict[str, Any]],
    template: ChatTemplate,
    tok: LoadedTokenizer,
    cfg: LoadedConfig,
    rejected: dict[str, list],
    st: StagedGold,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    loss_on = cfg.pipeline.tokenizer.loss_on
    seq_len = cfg.pipeline.packing.seq_len
    if regime == "sft":
        renderings = [[template.segments(_messages(r["messages"]), loss_on)] for r in records]
    else:
        renderings = [[_text_segments(r["text"], tok.eos)] for r in records]
    truncate = cfg.pipeline.packing.overlong == "truncate"
    out = []
    for rec, [(ids, mask)] in _encode(records, renderings, tok, regime, rejected, st):
        cut = None
        if len(ids) > seq_len and truncate and mask.any():
            keep = "first" if regime == "text" else "last"
            cut = truncate_sequence(ids, mask, seq_len, keep, tok.token_id(tok.eos))
        if not mask.any():
            reason, detail = "no_trained_tokens", "the template trains no token of this record"
        elif cut is not None:
            out.append((rec["record_id"], *cut))
            st.truncated.append(rec["record_id"])
            continue
        elif len(ids) > seq_len:
            reason, detail = "too_long", f"{len(ids)} tokens, more than packing.seq_len {seq_len}"
        else:
            out.append((rec["record_id"], ids, mask))
            continue
        _reject(rejected, rec, regime, reason, detail)
        st.reasons[reason] += 1
    return out


def _pack(
    sequences: list[tuple[str, np.ndarray, np.ndarray]],
    seq_len: int,
    date: dt.date,
    rows: dict[str, list],
    st: StagedGold,
) -> None:
    lengths = [len(ids) for _, ids, _ in sequences]
    cut = set(st.truncated)
    for members in pack_best_fit(lengths, [rid for rid, _, _ in sequences], seq_len):
        lens = [lengths[i] for i in members]
        ids = np.concatenate([sequences[i][1] for i in members])
        mask = np.concatenate([sequences[i][2] for i in members])
        rows["input_ids"].append(ids)
        rows["loss_mask"].append(mask)
        rows["position_ids"].append(position_ids(lens))
        rows["seq_lens"].append(lens)
        rows["record_ids"].append([sequences[i][0] for i in members])
        rows["truncated"].append([sequences[i][0] for i in members if sequences[i][0] in cut])
        rows["date"].append(date)
        rows["tokens"].append(len(ids))
        rows["trained_tokens"].append(int(mask.sum()))
        st.tokens += len(ids)
        st.trained_tokens += int(mask.sum())
    st.rows = len(rows["input_ids"])
    st.capacity = st.rows * seq_len
    st.lengths = lengths


def _tokenize_pairs(
    records: list[dict[str, Any]],
    template: ChatTemplate,
    tok: LoadedTokenizer,
    seq_len: int,
    cfg: LoadedConfig,
    rows: dict[str, list],
    rejected: dict[str, list],
    st: StagedGold,
) -> None:
    loss_on = cfg.pipeline.tokenizer.loss_on
    renderings = []
    for r in records:
        prompt = _messages(r["prompt"])
        renderings.append(
            [
                template.segments(prompt + _messages(r["chosen"]), loss_on),
                template.segments(prompt + _messages(r["rejected"]), loss_on),
                template.segments(prompt, loss_on, generation_prompt=True),
            ]
        )
    for rec, [(c_ids, c_mask), (r_ids, r_mask), (p_ids, _)] in _encode(
        records, renderings, tok, "preference", rejected, st
    ):
        longest = max(len(c_ids), len(r_ids))
        if not c_mask.any() or not r_mask.any():
            reason, detail = "no_trained_tokens", "chosen or rejected trains no token"
        elif longest > seq_len:
            reason, detail = "too_long", f"{longest} tokens, more than packing.seq_len {seq_len}"
        else:
            for name, value in (
                ("record_id", rec["record_id"]),
                ("record_ids", [rec["record_id"]]),
                ("date", rec["date"]),
                ("chosen_input_ids", c_ids),
                ("chosen_loss_mask", c_mask),
                ("rejected_input_ids", r_ids),
                ("rejected_loss_mask", r_mask),
                ("prompt_tokens", len(p_ids)),
            ):
                rows[name].append(value)
            st.rows += 1
            st.tokens += len(c_ids) + len(r_ids)
            st.trained_tokens += int(c_mask.sum() + r_mask.sum())
            st.lengths.append(longest)
            continue
        _reject(rejected, rec, "preference", reason, detail)
        st.reasons[reason] += 1


def _tokenize_prompts(
    records: list[dict[str, Any]],
    template: ChatTemplate,
    tok: LoadedTokenizer,
    max_prompt: int,
    rows: dict[str, list],
    rejected: dict[str, list],
    st: StagedGold,
) -> None:
    renderings = [[template.segments(_messages(r["prompt"]), generation_prompt=True)] for r in records]
    for rec, [(ids, _)] in _encode(records, renderings, tok, "rlvr", rejected, st):
        if len(ids) > max_prompt:
            _reject(rejected, rec, "rlvr", "prompt_too_long", f"{len(ids)} tokens, more than {max_prompt}")
            st.reasons["prompt_too_long"] += 1
            continue
        for name, value in (
            ("record_id", rec["record_id"]),
            ("record_ids", [rec["record_id"]]),
            ("date", rec["date"]),
            ("prompt_ids", ids),
            ("answer", rec["answer"]),
            ("verifier", rec["verifier"]),
            ("verifier_args", rec["verifier_args"]),
        ):
            rows[name].append(value)
        st.rows += 1
        st.tokens += len(ids)
        st.lengths.append(len(ids))
