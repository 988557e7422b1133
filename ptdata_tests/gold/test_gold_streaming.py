"""Gold in bounded memory: streamed staging gives the rows the in-memory packing gave, whatever the batches and
the silver row groups, and the audits still catch a record lost or packed twice."""

import datetime as dt
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ptdata.core.lake import Lake, TablePartition
from ptdata.gold.audits import audit_staged
from ptdata.gold.lake_tokenizer import load_lake_tokenizer
from ptdata.gold.pack import best_fit_plan, pack_best_fit, position_ids
from ptdata.gold.stage import StagedGold, _tokenize_packable, stage_gold
from ptdata.gold.templates import chat_template
from ptdata_tests.conftest import landing, run
from ptdata_tests.integration.test_gold_assets import SENTENCES

D = "2026-11-01"
DATE = dt.date.fromisoformat(D)
SEQ_LEN = 256
PACKING = {"seq_len": SEQ_LEN, "min_efficiency": 0.0, "overlong": "truncate"}


def _reference_pack(lengths: list[int], keys: list[str], capacity: int) -> list[list[int]]:
    """Best-fit decreasing by a scan of every open row, sorted() over (length, key): the least room that fits, ties
    to the row that came to that room last (the plan keeps rows of equal room as a stack). One list per row."""
    room, since, rows = [], [], []
    for step, i in enumerate(sorted(range(len(lengths)), key=lambda i: (-lengths[i], keys[i]))):
        fits = [r for r in range(len(rows)) if room[r] >= lengths[i]]
        if fits:
            row = min(fits, key=lambda r: (room[r], -since[r]))
        else:
            row = len(rows)
            rows.append([])
            room.append(capacity)
            since.append(step)
        rows[row].append(i)
        room[row] -= lengths[i]
        since[row] = step
    return rows


def _reference_rows(settings, regime: str = "sft") -> list[dict]:
    """The gold rows of the partition built the old way: every sequence in memory, packed, rows built one by one."""
    lake, cfg = Lake(settings.lake), settings.load_config()
    tok = load_lake_tokenizer(lake)
    silver = lake.read_table(lake.path(TablePartition("silver", f"silver_{regime}", DATE))).combine_chunks()
    [records] = silver.to_batches()
    template = chat_template(cfg.pipeline.tokenizer.chat_template, tok)
    st = StagedGold(regime, DATE, None, None, "", "", tok.sha256(), reasons=Counter())
    rejected: dict[str, list] = {name: [] for name in ("record_id", "source", "regime", "date", "reason", "detail")}
    seqs = _tokenize_packable(regime, records, template, tok, cfg, rejected, st)
    lengths = [len(ids) for _, ids, _, _ in seqs]
    rows = []
    for members in _reference_pack(lengths, [rid for rid, _, _, _ in seqs], SEQ_LEN):
        ids = np.concatenate([seqs[i][1] for i in members])
        mask = np.concatenate([seqs[i][2] for i in members])
        rows.append(
            {
                "input_ids": ids.tolist(),
                "loss_mask": mask.tolist(),
                "position_ids": position_ids([lengths[i] for i in members]).tolist(),
                "seq_lens": [lengths[i] for i in members],
                "record_ids": [seqs[i][0] for i in members],
                "truncated": [seqs[i][0] for i in members if seqs[i][3]],
                "date": DATE,
                "tokens": len(ids),
                "trained_tokens": int(mask.sum()),
            }
        )
    return rows


def _landing(settings, n: int = 300) -> None:
    rng = random.Random(11)
    chats = []
    for i in range(n):
        turns = []
        for _ in range(rng.randint(1, 3)):
            turns.append({"role": "user", "content": f"Case {i}: " + " ".join(rng.choices(SENTENCES, k=2))})
            answer = " ".join(rng.choices(SENTENCES, k=rng.choice([1, 2, 3, 12])))
            turns.append({"role": "assistant", "content": f"Answer {i}. {answer}"})
        chats.append({"messages": turns})
    words = " ".join(SENTENCES).replace(".", "").split()
    long_answer = " ".join(rng.choice(words) for _ in range(400)) + "."  # over seq_len: cut (truncated)
    chats.append(
        {"messages": [{"role": "user", "content": "All of it."}, {"role": "assistant", "content": long_answer}]}
    )
    chats.append(
        {"messages": [{"role": "user", "content": "Say <|im_end|>."}, {"role": "assistant", "content": "No."}]}
    )
    (landing(settings, "chat", D) / "c.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory):
    """A lake with silver_sft (300-odd records) and the tokenizer, shared by the tests (which stage, never publish)."""
    import dagster as dg
    import yaml

    from ptdata.core.config import Settings

    home = tmp_path_factory.mktemp("streaming")
    config = {
        "start_date": D,
        "sources": [{"name": "chat", "regime": "sft", "kind": "files"}],
        "quality": {"min_pass_rate": 0.5},
        "dedup": {"threshold": 0.99},
        "packing": PACKING,
    }
    (home / "ptdata.yaml").write_text(yaml.safe_dump(config))
    settings = Settings(home=home, config_path=home / "ptdata.yaml", lake=str(home / "lake"), engine="local")
    _landing(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        select = "group:bronze or key:eval_index or key:dedup_signatures or key:silver_sft or key:tokenizer"
        assert run(settings, instance, D, select=select).success
    return settings


def _stage(settings, stage_id: str, **kw):
    lake, cfg = Lake(settings.lake), settings.load_config()
    tok = load_lake_tokenizer(lake)
    return lake, cfg, tok, stage_gold(lake, cfg, "sft", DATE, stage_id, tok, **kw)


def test_streamed_gold_rows_are_the_in_memory_packing_rows(lake_home, monkeypatch):
    lake, cfg, tok, st = _stage(lake_home, "small-batches", batch_rows=16, row_group_bytes=1)
    gold = pq.ParquetFile(st.gold_staged)
    expected = _reference_rows(lake_home)
    assert st.silver_rows > 16 * 10 and gold.num_row_groups > 5  # many batches, many row groups
    assert gold.read().to_pylist() == expected
    assert sum(len(r["truncated"]) for r in expected) == st.truncated > 0
    assert (st.rows, st.tokens, st.capacity) == (len(expected), sum(r["tokens"] for r in expected), len(expected) * 256)
    assert st.trained_tokens == sum(r["trained_tokens"] for r in expected)
    assert sorted(st.lengths.tolist()) == sorted(n for r in expected for n in r["seq_lens"])
    assert dict(st.reasons) == {"special_token_in_content": 1}
    # chunk files two at a time: a pass over the spill per two chunks, the same rows
    monkeypatch.setattr("ptdata.gold.stage.MAX_CHUNK_FILES", 2)
    _, _, _, few = _stage(lake_home, "few-files", batch_rows=16)
    assert pq.read_table(few.gold_staged).to_pylist() == expected
    # the spill sent to the chunk files a batch at a time, not in groups: the same rows
    monkeypatch.setattr("ptdata.gold.stage.SPILL_GROUP_BYTES", 1)
    _, _, _, ungrouped = _stage(lake_home, "ungrouped", batch_rows=16)
    assert pq.read_table(ungrouped.gold_staged).to_pylist() == expected
    monkeypatch.undo()
    # the default sizes: one batch, one row group, the same rows
    _, _, _, whole = _stage(lake_home, "one-batch")
    assert pq.ParquetFile(whole.gold_staged).num_row_groups == 1
    assert pq.read_table(whole.gold_staged).to_pylist() == expected
    audits = audit_staged(lake, cfg, st, tok)
    assert all(o.passed for o in audits.values()), audits


def test_packed_gold_does_not_depend_on_the_silver_row_groups(lake_home):
    lake = Lake(lake_home.lake)
    silver_path = lake.path(TablePartition("silver", "silver_sft", DATE))
    silver = pq.read_table(silver_path)
    outputs = []
    try:
        for group in (1, 7, 100, silver.num_rows):
            pq.write_table(silver, silver_path, row_group_size=group)
            assert pq.ParquetFile(silver_path).num_row_groups == -(-silver.num_rows // group)
            _, _, _, st = _stage(lake_home, f"silver-groups-{group}", batch_rows=16)
            outputs.append(Path(st.gold_staged).read_bytes())
    finally:
        pq.write_table(silver, silver_path)
    assert all(out == outputs[0] for out in outputs[1:])


def _rewrite(path: str, rows: pa.Table) -> None:
    schema = pq.read_schema(path)
    pq.write_table(rows.cast(schema), path)


def test_accounting_catches_a_record_lost_or_packed_twice(lake_home):
    lake, cfg, tok, st = _stage(lake_home, "tampered", batch_rows=64)
    rows = pq.read_table(st.gold_staged)
    assert audit_staged(lake, cfg, st, tok)["accounting"].passed
    _rewrite(st.gold_staged, rows.slice(0, rows.num_rows - 1))
    lost = len(rows.column("record_ids")[-1].as_py())
    accounting = audit_staged(lake, cfg, st, tok)["accounting"]
    assert not accounting.passed
    assert accounting.metadata["problems"] == [f"{lost} silver records in neither gold nor gold_rejections"]
    assert accounting.metadata["in_rows"] == st.silver_rows - 1 - lost
    _rewrite(st.gold_staged, pa.concat_tables([rows, rows.slice(0, 1)]))
    twice = len(rows.column("record_ids")[0].as_py())
    accounting = audit_staged(lake, cfg, st, tok)["accounting"]
    assert accounting.metadata["problems"] == [f"{twice} records in more than one row"]


def test_best_fit_plan_is_the_sorted_packing_with_str_or_bytes_keys():
    rng = np.random.default_rng(5)
    lengths = np.clip(rng.lognormal(4.0, 1.0, 3000).astype(int), 1, 512)
    keys = [f"{rng.integers(0, 50):02d}-é" for _ in range(len(lengths))]  # many ties on length and key both
    expected = _reference_pack(lengths.tolist(), keys, 512)
    assert pack_best_fit(lengths, keys, 512) == expected
    assert pack_best_fit(lengths, np.array([k.encode() for k in keys]), 512) == expected
    row_of, pos_of = best_fit_plan(lengths, keys, 512)
    assert all(row_of[i] == r and pos_of[i] == p for r, members in enumerate(expected) for p, i in enumerate(members))
    assert pack_best_fit([], [], 16) == []


def test_the_token_and_mask_audits_name_each_broken_row(lake_home):
    lake, cfg, tok, st = _stage(lake_home, "broken", batch_rows=64, row_group_bytes=1 << 14)
    rows = pq.read_table(st.gold_staged).to_pylist()
    assert pq.ParquetFile(st.gold_staged).num_row_groups > 1 and len(rows) > 9  # problems in several row groups
    end = tok.token_id("<|im_end|>")
    rows[3]["input_ids"][0] = tok.vocab_size  # outside the vocabulary
    rows[6]["position_ids"][0] = 1  # does not restart at the first sequence
    rows[7]["position_ids"] = rows[7]["position_ids"][:-1]  # a length that disagrees
    rows[2]["loss_mask"] = [0] * len(rows[2]["loss_mask"])  # every sequence of the row trains nothing
    rows[5]["loss_mask"][rows[5]["loss_mask"].index(1)] = 2  # a mask value other than 0 and 1
    first = rows[8]["loss_mask"][: rows[8]["seq_lens"][0]]
    last = len(first) - 1 - first[::-1].index(1)
    assert rows[8]["input_ids"][last] == end
    rows[8]["input_ids"][last] = 5  # the first sequence's last trained token is no end of turn
    _rewrite(st.gold_staged, pa.Table.from_pylist(rows))
    audits = audit_staged(lake, cfg, st, tok)

    def where(n: int) -> str:
        return f"row {n} ({rows[n]['record_ids'][0]})"

    tokens, masks = audits["tokens_valid"], audits["masks"]
    assert not tokens.passed and tokens.metadata["count"] == 3
    assert tokens.metadata["problems"] == [
        f"{where(3)}: a token id outside the vocabulary of {tok.vocab_size}",
        f"{where(6)}: position_ids do not restart at 0 where a sequence starts",
        f"{where(7)}: input_ids, loss_mask, position_ids and seq_lens disagree in length",
    ]
    empty = len(rows[2]["seq_lens"])
    assert not masks.passed and masks.metadata["count"] == empty + 2
    expected = [f"{where(2)}: a sequence with no trained token"] * empty + [
        f"{where(5)}: a loss mask value other than 0 and 1",
        f"{where(8)}: a sequence whose last trained token is not an end of turn",
    ]
    assert masks.metadata["problems"] == expected[:5]
    assert audits["packing_efficiency"].passed and audits["accounting"].passed


def test_the_tokenizer_corpus_stops_at_its_cap_per_vocabulary_entry(lake_home, monkeypatch):
    import ptdata.gold.lake_tokenizer as lake_tokenizer
    from ptdata.core.regimes import all_text

    lake, cfg = Lake(lake_home.lake), lake_home.load_config()
    every = lake_tokenizer._silver_texts(lake, cfg)
    silver = lake.read_table(lake.path(TablePartition("silver", "silver_sft", DATE))).to_pylist()
    assert every == [all_text("sft", r) for r in silver]  # under the cap: all of silver, in its order
    cap = sum(map(len, every[:10])) - 1  # reached inside the tenth text
    monkeypatch.setattr(lake_tokenizer, "TRAIN_CHARS_PER_ENTRY", cap / cfg.pipeline.tokenizer.vocab_size)
    assert lake_tokenizer._silver_texts(lake, cfg) == every[:10]
