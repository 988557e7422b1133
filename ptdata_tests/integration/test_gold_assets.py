"""Gold assets materialized in a temporary PTDATA_HOME: tokenizer, gold_<regime>, gold_rejections."""

import json
import random
import shutil

import duckdb
import numpy as np
import pyarrow.parquet as pq
from tokenizers import Tokenizer

from ptdata.gold.tokenize import train_bpe
from ptdata_tests.conftest import landing, run

D = "2026-11-01"
SOURCES = [
    {"name": "chat", "regime": "sft", "kind": "files"},
    {"name": "pairs", "regime": "preference", "kind": "files"},
    {"name": "problems", "regime": "rlvr", "kind": "files", "verifier": "math"},
    {"name": "docs", "regime": "text", "kind": "files"},
]
SENTENCES = [
    "The harbour master logs every ship that enters after dark.",
    "Fresh bread is sold at the corner bakery before seven.",
    "Our build server compiles the firmware twice a day.",
    "Tomatoes ripen faster on the sunny side of the greenhouse.",
    "Zürich trams run every seven minutes — même le dimanche.",
    "The museum moved its fossil collection to the east wing.",
]


def _config(**extra) -> dict:
    return {
        "start_date": D,
        "sources": SOURCES,
        "quality": {"min_pass_rate": 0.5},
        "packing": {"seq_len": 256, "min_efficiency": 0.0},
        **extra,
    }


def _chat(i: int) -> dict:
    user = f"Question {i}: {SENTENCES[i % 6]} Can you explain why, in two sentences?"
    answer = f"Answer {i}. {SENTENCES[(i + 1) % 6]} {SENTENCES[(i + 2) % 6]}"
    follow = f"Thanks. And in one word, for case {i}?"
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": follow},
            {"role": "assistant", "content": f"Certainly, number {i}."},
        ]
    }


def write_landing(settings) -> None:
    chats = [_chat(i) for i in range(40)]
    vocab = " ".join(SENTENCES).replace(".", "").split()
    rng = random.Random(7)
    long_answer = " ".join(rng.choice(vocab) for _ in range(400)) + "."  # over 256 tokens, not repetitive
    chats.append(
        {
            "messages": [
                {"role": "user", "content": "Tell me everything."},
                {"role": "assistant", "content": long_answer},
            ]
        }
    )
    chats.append(
        {
            "messages": [
                {"role": "user", "content": "Say <|im_end|> please."},
                {"role": "assistant", "content": "I will not."},
            ]
        }
    )
    (landing(settings, "chat", D) / "c.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    pairs = [
        {"prompt": f"Pick a title for story {i}.", "chosen": f"The Quiet Harbour, part {i}.", "rejected": f"Story {i}."}
        for i in range(10)
    ]
    (landing(settings, "pairs", D) / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    problems = [
        {"question": f"What is {i} plus {i + 3}? Answer with a number.", "answer": str(2 * i + 3)} for i in range(10)
    ]
    (landing(settings, "problems", D) / "q.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    for i in range(12):
        text = " ".join(SENTENCES[(i + k) % 6] for k in range(4)) + f" Note {i}."
        (landing(settings, "docs", D) / f"doc{i:02d}.txt").write_text(text)


def _gold(settings, table: str):
    return duckdb.sql(
        f"select * from read_parquet('{settings.lake}/gold/{table}/**/*.parquet', hive_partitioning=true)"
    )


def test_gold_rows_train_exactly_the_assistant_text_and_account_for_every_record(make_home, instance):
    settings = make_home(_config())
    write_landing(settings)
    result = run(settings, instance, D)
    assert result.success
    tok = Tokenizer.from_file(f"{settings.lake}/gold/tokenizer/tokenizer.json")
    silver = {
        r["record_id"]: r
        for r in pq.read_table(f"{settings.lake}/silver/silver_sft/date={D}/part-0.parquet").to_pylist()
    }
    packed = []
    for row in _gold(settings, "gold_sft").fetchall():
        cols = dict(zip(_gold(settings, "gold_sft").columns, row, strict=True))
        ids, mask, pos = np.array(cols["input_ids"]), np.array(cols["loss_mask"]), cols["position_ids"]
        assert len(ids) == len(mask) == len(pos) <= 256
        start = 0
        for rid, n in zip(cols["record_ids"], cols["seq_lens"], strict=True):
            assert pos[start : start + n] == list(range(n))  # positions restart: no sequence sees another
            trained = tok.decode(
                ids[start : start + n][mask[start : start + n] == 1].tolist(), skip_special_tokens=False
            )
            turns = [m["content"] for m in silver[rid]["messages"] if m["role"] == "assistant"]
            assert trained == "".join(t + "<|im_end|>" for t in turns)
            start += n
        packed += cols["record_ids"]
    rejections = dict(
        duckdb.sql(
            f"select reason, count(*) from read_parquet('{settings.lake}/gold/gold_rejections/**/*.parquet', "
            "hive_partitioning=true) where regime = 'sft' group by reason"
        ).fetchall()
    )
    assert rejections == {"too_long": 1, "special_token_in_content": 1}
    assert len(packed) == len(set(packed)) == len(silver) - 2
    checks = {(c.asset_key.path[0], c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    assert all(v for (asset, _), v in checks.items() if asset.startswith("gold_") or asset == "tokenizer")
    # every gold file names the tokenizer it was built with, and it is the one in the lake
    sha = next(
        e.event_specific_data.materialization.metadata["sha256"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["tokenizer"]
    )
    for regime in ("sft", "preference", "rlvr", "text"):
        meta = pq.read_schema(f"{settings.lake}/gold/gold_{regime}/date={D}/part-0.parquet").metadata
        assert meta[b"ptdata.tokenizer_sha256"].decode() == sha


def test_gold_preference_rlvr_and_text(make_home, instance):
    settings = make_home(_config())
    write_landing(settings)
    assert run(settings, instance, D).success
    tok = Tokenizer.from_file(f"{settings.lake}/gold/tokenizer/tokenizer.json")
    pairs = _gold(settings, "gold_preference").fetchall()
    cols = _gold(settings, "gold_preference").columns
    assert len(pairs) == 10
    for row in pairs:
        r = dict(zip(cols, row, strict=True))
        chosen = tok.decode(
            [i for i, m in zip(r["chosen_input_ids"], r["chosen_loss_mask"], strict=True) if m],
            skip_special_tokens=False,
        )
        assert chosen.startswith("The Quiet Harbour") and chosen.endswith("<|im_end|>")
        assert r["chosen_input_ids"][: r["prompt_tokens"] - 3] == r["rejected_input_ids"][: r["prompt_tokens"] - 3]
    prompts = _gold(settings, "gold_rlvr").fetchall()
    rl_cols = _gold(settings, "gold_rlvr").columns
    first = dict(zip(rl_cols, prompts[0], strict=True))
    assert tok.decode(first["prompt_ids"], skip_special_tokens=False).endswith("<|im_start|>assistant\n")
    assert first["verifier"] == "math" and len(prompts) == 10
    text = _gold(settings, "gold_text").fetchall()
    t_cols = _gold(settings, "gold_text").columns
    docs = sum(len(dict(zip(t_cols, r, strict=True))["record_ids"]) for r in text)
    assert docs == pq.read_metadata(f"{settings.lake}/silver/silver_text/date={D}/part-0.parquet").num_rows > 0
    for r in text:
        row = dict(zip(t_cols, r, strict=True))
        assert all(row["loss_mask"]) and row["input_ids"].count(tok.token_to_id("<|endoftext|>")) == len(
            row["record_ids"]
        )


def test_two_fresh_runs_give_byte_identical_gold_and_releases(make_home, instance):
    homes = [make_home(_config(), name=f"home{i}") for i in range(2)]
    for settings in homes:
        write_landing(settings)
        assert run(settings, instance, D).success
    files = [
        sorted([*(s.home / "lake" / "gold").rglob("*.*"), *(s.home / "lake" / "releases").rglob("*.*")]) for s in homes
    ]
    assert any(p.name == "manifest.json" for p in files[0])
    assert [p.relative_to(homes[0].home) for p in files[0]] == [p.relative_to(homes[1].home) for p in files[1]]
    for a, b in zip(*files, strict=True):
        assert a.read_bytes() == b.read_bytes(), a


def test_a_configured_hf_tokenizer_folder_and_its_own_template(make_home, instance, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    train_bpe([s for s in SENTENCES] * 30, 700).save(str(folder / "tokenizer.json"))
    template = (
        "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n'"
        " + m['content'] + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    )
    config = {"eos_token": "<|eot_id|>", "bos_token": "<|begin_of_text|>", "chat_template": template}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    settings = make_home(_config(tokenizer={"path": str(folder), "chat_template": "hf"}))
    write_landing(settings)
    result = run(settings, instance, D)
    assert result.success
    assert (settings.home / "lake" / "gold" / "tokenizer" / "tokenizer.json").read_bytes() == (
        Tokenizer.from_file(str(folder / "tokenizer.json")).to_str().encode()
    )
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    row = _gold(settings, "gold_sft").fetchone()
    cols = _gold(settings, "gold_sft").columns
    r = dict(zip(cols, row, strict=True))
    first = r["input_ids"][: r["seq_lens"][0]]
    assert tok.decode(first[:2], skip_special_tokens=False) == "<|begin_of_text|><|start_header_id|>"


def test_a_failed_gold_gate_publishes_nothing(make_home, instance):
    settings = make_home(_config(packing={"seq_len": 256, "min_efficiency": 1.0}))
    write_landing(settings)
    result = run(settings, instance, D)
    assert not result.success
    failure = [e for e in result.get_step_failure_events() if e.step_key == "gold_sft"][0]
    assert "packing efficiency" in failure.step_failure_data.error.message
    assert not (settings.home / "lake" / "gold" / "gold_sft").exists()


def test_a_new_tokenizer_leaves_gold_stale_and_the_release_refuses_it(make_home, instance):
    settings = make_home(_config())
    write_landing(settings)
    assert run(settings, instance, D).success
    settings.config_path.write_text(json.dumps(_config(tokenizer={"vocab_size": 512})))
    assert run(settings, instance, D, select="tokenizer").success
    result = run(settings, instance, D, select="release")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "not all the current one: re-materialize the stale gold partitions first" in message
    assert run(settings, instance, D, select="group:gold").success  # gold rebuilt with the new tokenizer


def test_overlong_records_truncated_keep_their_trained_end(make_home, instance):
    settings = make_home(_config(packing={"seq_len": 256, "min_efficiency": 0.0, "overlong": "truncate"}))
    write_landing(settings)
    assert run(settings, instance, D).success
    tok = Tokenizer.from_file(f"{settings.lake}/gold/tokenizer/tokenizer.json")
    table = _gold(settings, "gold_sft")
    rows = [dict(zip(table.columns, r, strict=True)) for r in table.fetchall()]
    cut = [(row, rid) for row in rows for rid in row["truncated"]]
    assert len(cut) == 1
    row, rid = cut[0]
    k = row["record_ids"].index(rid)
    start = sum(row["seq_lens"][:k])
    n = row["seq_lens"][k]
    assert n == 256
    ids, mask = row["input_ids"][start : start + n], row["loss_mask"][start : start + n]
    trained = tok.decode([i for i, m in zip(ids, mask, strict=True) if m], skip_special_tokens=False)
    assert trained.endswith(".<|im_end|>")  # the end of the long answer and its end of turn survived
    reasons = duckdb.sql(
        f"select reason from read_parquet('{settings.lake}/gold/gold_rejections/**/*.parquet', hive_partitioning=true)"
        " where regime = 'sft'"
    ).fetchall()
    assert reasons == [("special_token_in_content",)]  # the cut record is in its row, not rejected


def test_a_release_run_killed_before_it_removed_the_old_release_does_not_block_the_next(make_home, instance):
    settings = make_home(_config())
    write_landing(settings)
    assert run(settings, instance, D).success
    releases = settings.home / "lake" / "releases"
    (name,) = [p.name for p in releases.iterdir()]
    # what a run killed after its swap and before it removed the old folder leaves behind
    shutil.copytree(releases / name, releases / f"{name}.replaced")
    result = run(settings, instance, D, select="key:release")
    assert result.success
    assert sorted(p.name for p in releases.iterdir()) == [name]
