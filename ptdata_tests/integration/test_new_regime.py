"""A fifth regime is one registry entry and one shape: registered here, in the test alone, it goes through bronze,
silver and gold like the built-in ones, without a line changed anywhere else (ARCHITECTURE.md, adding things)."""

import json
import random

import duckdb
import pyarrow as pa
import pytest
from tokenizers import Tokenizer

from ptdata.bronze import shapes
from ptdata.core import regimes
from ptdata_tests.conftest import landing, run

D = "2026-11-01"
SUMMARY = regimes.Regime(
    name="summary",
    columns=(("document", pa.string()), ("summary", pa.string())),
    string_fields=("document", "summary"),
    dedup_fields=("document",),
    lang_fields=("document",),
    reply_fields=(),
    length_fields=("document",),
    quality_rules=frozenset({"empty_turn", "length", "language"}),
    quality_defaults={"length": {"min_chars": 20}},
    gold_layout="document",
    shapes=("summary_pair",),
)
SUMMARY_PAIR = shapes.Shape(
    "summary_pair",
    lambda d: "article" in d and "abstract" in d,
    lambda d, _: ({"document": d["article"], "summary": d["abstract"]}, {"article", "abstract"}),
)
WORDS = (
    "harbour bakery firmware greenhouse museum tramway library orchard river ledger window garden engine lantern "
    "meadow violin compass cellar bridge market quarry saddle thunder pepper marble candle falcon basket"
).split()


@pytest.fixture
def summary_regime(monkeypatch):
    monkeypatch.setitem(regimes.REGIMES.entries, SUMMARY.name, SUMMARY)
    monkeypatch.setitem(shapes.SHAPES.entries, SUMMARY_PAIR.name, SUMMARY_PAIR)


def test_a_registered_regime_runs_bronze_to_gold(summary_regime, make_home, instance):
    settings = make_home(
        {
            "start_date": D,
            "sources": [{"name": "abstracts", "regime": "summary", "kind": "files", "license": "cc-by-4.0"}],
            "packing": {"seq_len": 512, "min_efficiency": 0.0},
            "tokenizer": {"vocab_size": 600},
        }
    )
    rng = random.Random(11)
    articles = [" ".join(rng.choice(WORDS) for _ in range(40)) + "." for _ in range(12)]
    lines = [json.dumps({"article": a, "abstract": f"Summary {i}: {a[:30]}."}) for i, a in enumerate(articles)]
    lines += [json.dumps({"article": "", "abstract": "empty"}), json.dumps({"title": "no shape fits this"})]
    (landing(settings, "abstracts", D) / "part.jsonl").write_text("\n".join(lines) + "\n")
    result = run(settings, instance, D)
    assert result.success
    lake = settings.lake

    def count(table: str, where: str = "true") -> int:
        return duckdb.sql(f"select count(*) from read_parquet('{lake}/{table}/**/*.parquet') where {where}").fetchone()[
            0
        ]

    assert count("bronze/bronze_summary") == 13 and count("bronze/bronze_quarantine", "regime = 'summary'") == 1
    assert count("silver/silver_summary") == 12
    assert duckdb.sql(
        f"select reason from read_parquet('{lake}/silver/silver_rejections/**/*.parquet') where regime = 'summary'"
    ).fetchall() == [("quality:empty_turn",)]
    rows = duckdb.sql(
        f"select input_ids, loss_mask, record_ids from read_parquet('{lake}/gold/gold_summary/**/*.parquet')"
    )
    tok = Tokenizer.from_file(f"{lake}/gold/tokenizer/tokenizer.json")
    packed = rows.fetchall()
    assert sum(len(ids) for _, _, ids in packed) == 12  # every silver record in one packed row
    text = "".join(tok.decode([t for t, m in zip(ids, mask, strict=True) if m]) for ids, mask, _ in packed)
    assert articles[0] in text and "Summary 0:" in text  # document and summary both trained
