"""Decontamination: planted copies of eval items are caught in every form, look-alikes are kept, the index
round-trips through Arrow, and eval sets load from every supported format."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from ptdata.silver.decontam import (
    EvalIndex,
    find_contamination,
    find_contamination_batch,
    item_ngram,
)
from ptdata.silver.eval_sets import load_eval_items
from ptdata.silver.normalize import dedup_key_text

DEMO_EVAL = Path(__file__).resolve().parents[2] / "ptdata" / "demo" / "evals" / "demo_eval.jsonl.gz"
EXTRA = [
    ("extra", "short-1", "Name the capital of Australia."),  # 5 words: indexed whole
    ("extra", "mid-1", "Explain why the sky looks blue at noon but red and orange at sunset."),  # 14 words
    ("extra", "mid-2", "List three prime numbers greater than fifty and explain how you checked each."),  # 13 words
]
# same topics as eval items, in other words: must never be flagged
LOOK_ALIKES = [
    "A cinema sold 120 adult tickets at $12 and 80 child tickets at $7. What was the total revenue of the day?",
    "Write a function that converts an integer to a Roman numeral, for example 1994 becomes MCMXCIV.",
    "Our school got a box of new books; the librarian shelved them by subject and kept a few for display.",
    "What is the capital city of Austria, and which river flows through it?",
    "Why does the ocean look blue on a clear day, and does the colour change in a storm?",
]


@pytest.fixture(scope="module")
def items() -> list[tuple[str, str, str]]:
    return [("demo_eval", item_id, text) for item_id, text in load_eval_items(DEMO_EVAL, ["prompt"])] + EXTRA


@pytest.fixture(scope="module")
def index(items) -> EvalIndex:
    return EvalIndex.build(items, ngram=13)


def _contiguous(text: str, share: float, rng: random.Random) -> str:
    """A contiguous run of `share` of the text's words (rounded up), from a random start."""
    words = text.split()
    size = -(-len(words) * int(share * 10) // 10)
    start = rng.randrange(len(words) - size + 1)
    return " ".join(words[start : start + size])


def _planted(text: str, rng: random.Random) -> dict[str, str]:
    respaced = "  ".join(text.split(" ")).replace(". ", ".\n\n   ")
    return {
        "verbatim": text,
        "re-spaced": respaced,
        "crlf": text.replace(". ", ".\r\n").replace("\n", "\r\n") + "\r\n",
        "inside a longer instruction": (
            "You are a careful tutor. Read the problem below and solve it step by step, then give the final "
            f"answer on its own line.\n\n{text}\n\nShow your reasoning before the answer, please."
        ),
        "70% of the item": _contiguous(text, 0.7, rng),
        "70% re-cased inside chat": f"user: {_contiguous(text, 0.7, rng).upper()}\nassistant: Sure.",
    }


def test_item_ngram_sizes():
    sizes = {0: 0, 3: 3, 7: 7, 8: 8, 11: 8, 12: 8, 15: 10, 18: 12, 19: 13, 25: 13, 200: 13}  # words: n-gram size
    assert {words: item_ngram(words, 13) for words in sizes} == sizes
    # a 70% copy of any item of 12 words or more holds at least one n-gram of the item
    for words in range(12, 300):
        assert -(-words * 7 // 10) >= item_ngram(words, 13)
    assert item_ngram(40, 5) == 5  # a smaller configured n is never raised


def test_planted_contamination_is_caught_every_time(index, items):
    rng = random.Random(5)
    planted, expected = [], []
    for eval_set, item_id, text in items:
        for kind, copy in _planted(text, rng).items():
            if kind.startswith("70%") and len(dedup_key_text(text).split()) < 12:
                continue  # the documented limit: under 12 words only copies of 8+ words are caught
            planted.append(copy)
            expected.append((kind, eval_set, item_id))
    found = find_contamination_batch(index, planted)
    missed = [e for e, m in zip(expected, found, strict=True) if m is None]
    assert not missed
    texts = {(eval_set, item_id): text for eval_set, item_id, text in items}
    for (kind, *item), match in zip(expected, found, strict=True):
        if kind.startswith("70%") and (match.eval_set, match.item_id) != tuple(item):
            # the demo set has twins (demo-code-000 and -001 differ in a word and the example): a part of one
            # is as much a part of the other, and the tie goes to the smaller id; the n-gram is still shared
            assert match.ngram in dedup_key_text(texts[tuple(item)]), (kind, item, match)
        else:
            assert (match.eval_set, match.item_id) == tuple(item), (kind, item, match)
    assert len(planted) > 6 * 60


def test_match_detail(index, items):
    text = dict((i, t) for _, i, t in items)["demo-math-009"]
    match = find_contamination(index, "Please solve this: " + text)
    assert (match.eval_set, match.item_id) == ("demo_eval", "demo-math-009")
    # the first shared n-gram in the text, as key text: 13 words that occur in the item
    assert len(match.ngram.split()) == 13
    assert match.ngram in dedup_key_text(text)
    assert match.shared == len(dedup_key_text(text).split()) - 12


def test_short_items_are_matched_whole(index):
    assert find_contamination(index, "Quiz time: name the CAPITAL of Australia!").item_id == "short-1"
    assert find_contamination(index, "Name the capital of Austria.") is None
    assert find_contamination(index, "the capital of Australia is Canberra") is None  # part of the item only


def test_look_alikes_are_kept(index):
    assert find_contamination_batch(index, LOOK_ALIKES) == [None] * len(LOOK_ALIKES)


def test_an_empty_index_finds_nothing():
    empty = EvalIndex.build([("e", "blank", " ... "), ("e", "none", "")], ngram=13)
    assert len(empty) == 0
    assert find_contamination_batch(EvalIndex.from_arrow(empty.to_arrow()), ["any text at all", ""]) == [None, None]


def test_batch_equals_single_and_handles_empty_texts(index, items):
    texts = ["", items[3][2], "   ", LOOK_ALIKES[0], items[40][2] + " " + items[41][2]]
    assert find_contamination_batch(index, texts) == [find_contamination(index, t) for t in texts]
    assert find_contamination_batch(index, texts)[0] is None


def test_index_round_trips_and_is_deterministic(index, items):
    table = index.to_arrow()
    assert table.schema.field("ngram_hash").type == pa.uint64()
    assert {"eval_set", "item_id", "ngram_text"} <= set(table.column_names)
    back = EvalIndex.from_arrow(pq.read_table(_write(table)))
    assert back.ngram == 13 and back.to_arrow().equals(table)
    assert find_contamination(back, items[7][2]) == find_contamination(index, items[7][2])
    shuffled = random.Random(1).sample(items, len(items))
    assert EvalIndex.build(shuffled, ngram=13).to_arrow().equals(table)
    with pytest.raises(ValueError, match="not an eval index"):
        EvalIndex.from_arrow(table.replace_schema_metadata(None))


def test_a_hash_collision_is_not_a_match():
    words = [f"word{i}" for i in range(20)]  # 20 words: 8 distinct 13-grams
    record = "Count with me: " + " ".join(words) + " and so on."
    table = EvalIndex.build([("nums", "n1", " ".join(words))], ngram=13).to_arrow()
    # forge a collision: keep every hash but give the record's first n-gram another text
    texts = table["ngram_text"].to_pylist()
    first = texts.index(" ".join(words[:13]))
    forged = table.set_column(4, "ngram_text", pa.array(["zzz" if i == first else t for i, t in enumerate(texts)]))
    match = find_contamination(EvalIndex.from_arrow(forged), record)
    assert (match.item_id, match.ngram, match.shared) == ("n1", " ".join(words[1:14]), 7)
    everything_forged = table.set_column(4, "ngram_text", pa.array(["zzz"] * table.num_rows))
    assert find_contamination(EvalIndex.from_arrow(everything_forged), record) is None


def _write(table: pa.Table) -> pa.BufferReader:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return pa.BufferReader(sink.getvalue())


def test_load_eval_items_formats(tmp_path):
    recs = [
        {"task_id": "t/0", "prompt": "First prompt.", "tests": "assert f()"},
        {"task_id": "t/1", "prompt": "Second prompt.", "tests": "assert g()"},
    ]
    expected = [("t/0", "First prompt."), ("t/1", "Second prompt.")]
    jsonl = b"".join(json.dumps(r).encode() + b"\n" for r in recs)
    (tmp_path / "a.jsonl").write_bytes(jsonl)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(jsonl))
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl))
    (tmp_path / "a.json").write_text(json.dumps(recs))
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "a.parquet")
    (tmp_path / "a.parquet.gz").write_bytes(gzip.compress((tmp_path / "a.parquet").read_bytes()))
    for name in ("a.jsonl", "a.jsonl.gz", "a.jsonl.zst", "a.json", "a.parquet", "a.parquet.gz"):
        assert load_eval_items(tmp_path / name, ["prompt"]) == expected, name
    assert load_eval_items(tmp_path / "a.jsonl", ["prompt", "tests"])[0] == ("t/0", "First prompt.\nassert f()")


def test_load_eval_items_ids_messages_and_errors(tmp_path):
    (tmp_path / "keyed.json").write_text(json.dumps({"q1": {"question": "Why?"}, "q2": {"question": "How?"}}))
    assert load_eval_items(tmp_path / "keyed.json", ["question"]) == [("q1", "Why?"), ("q2", "How?")]
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
    (tmp_path / "chat.jsonl").write_text(json.dumps(chat) + "\n\n")
    assert load_eval_items(tmp_path / "chat.jsonl", ["messages"]) == [("0", "Hi\nYo")]
    with pytest.raises(ValueError, match="record 0 has none of the fields"):
        load_eval_items(tmp_path / "chat.jsonl", ["prompt"])
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unknown eval set format"):
        load_eval_items(tmp_path / "x.csv", ["a"])
