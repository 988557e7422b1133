import datetime as dt
from pathlib import Path

import pytest
import yaml

from ptdata.core.config import BUNDLED_DEMO_CONFIG, ConfigError, Settings, load_config, parse_config

BASE = {"start_date": "2026-11-01", "sources": [{"name": "chat", "regime": "sft", "kind": "files"}]}


def _parse(data, tmp_path: Path, env=None):
    return parse_config(data, tmp_path / "ptdata.yaml", env or {})


def test_minimal_config_has_contract_defaults(tmp_path):
    cfg = _parse(BASE, tmp_path).pipeline
    assert cfg.start_date == dt.date(2026, 11, 1)
    assert (cfg.dedup.ngram, cfg.dedup.num_perm, cfg.dedup.threshold) == (5, 128, 0.8)
    assert cfg.decontam.ngram == 13 and cfg.quality.min_pass_rate == 0.8
    assert cfg.tokenizer.chat_template == "chatml" and cfg.packing.seq_len == 4096
    assert cfg.sources[0].shape == "auto" and cfg.sources[0].format == "auto"


def test_unknown_key_is_named_with_its_path(tmp_path):
    data = {**BASE, "sources": [{**BASE["sources"][0], "fromat": "jsonl"}]}
    with pytest.raises(ConfigError, match=r"sources\[0\]\.fromat: unknown key"):
        _parse(data, tmp_path)


def test_bad_choice_lists_allowed_values(tmp_path):
    data = {**BASE, "sources": [{**BASE["sources"][0], "regime": "rl"}]}
    with pytest.raises(ConfigError) as e:
        _parse(data, tmp_path)
    msg = str(e.value)
    assert "sources[0].regime" in msg and "'sft'" in msg and "'preference'" in msg and "'text'" in msg


def test_bad_kind_lists_allowed_kinds(tmp_path):
    data = {**BASE, "sources": [{"name": "x", "regime": "sft", "kind": "ftp"}]}
    with pytest.raises(ConfigError, match=r"sources\[0\].*files.*http.*web.*sql"):
        _parse(data, tmp_path)


def test_shape_must_fit_regime(tmp_path):
    data = {**BASE, "sources": [{**BASE["sources"][0], "shape": "hh"}]}
    with pytest.raises(ConfigError, match=r"sources\[0\].*'hh' does not fit regime 'sft'"):
        _parse(data, tmp_path)


def test_out_of_range_number_names_key(tmp_path):
    with pytest.raises(ConfigError, match=r"dedup\.threshold"):
        _parse({**BASE, "dedup": {"threshold": 1.5}}, tmp_path)


def test_duplicate_source_names_rejected(tmp_path):
    data = {**BASE, "sources": BASE["sources"] * 2}
    with pytest.raises(ConfigError, match="used twice"):
        _parse(data, tmp_path)


def test_env_interpolation_and_missing_variable(tmp_path):
    data = {
        **BASE,
        "sources": [
            {
                "name": "api",
                "regime": "sft",
                "kind": "http",
                "url": "http://x/${HOST:-default}",
                "headers": {"A": "${TOKEN}"},
            }
        ],
    }
    cfg = _parse(data, tmp_path, {"TOKEN": "s3cret"}).pipeline
    assert cfg.sources[0].headers == {"A": "s3cret"} and cfg.sources[0].url == "http://x/default"
    with pytest.raises(ConfigError, match=r"sources\[0\]\.headers\.A: environment variable TOKEN is not set"):
        _parse(data, tmp_path, {})


def test_missing_eval_file_and_relative_paths(tmp_path):
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "e.jsonl").write_text('{"prompt": "x"}\n')
    ok = _parse({**BASE, "eval_sets": [{"name": "e", "path": "evals/e.jsonl"}]}, tmp_path)
    assert ok.resolve(ok.pipeline.eval_sets[0].path) == tmp_path / "evals" / "e.jsonl"
    with pytest.raises(ConfigError, match=r"eval_sets\[0\]\.path: file not found"):
        _parse({**BASE, "eval_sets": [{"name": "e", "path": "nope.jsonl"}]}, tmp_path)


def test_sql_query_must_bind_window(tmp_path):
    data = {
        **BASE,
        "sources": [{"name": "db", "regime": "rlvr", "kind": "sql", "uri": "sqlite:///x.db", "query": "select 1"}],
    }
    with pytest.raises(ConfigError, match=r"sources\[0\]\.query.*:start and :end"):
        _parse(data, tmp_path)


def test_load_config_reports_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("start_date: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE))
    assert load_config(good).path == good.resolve()


def test_settings_defaults(tmp_path):
    s = Settings.from_env({"PTDATA_HOME": str(tmp_path)})
    assert s.home == tmp_path and s.lake == str(tmp_path / "lake") and s.config_path == BUNDLED_DEMO_CONFIG
    (tmp_path / "ptdata.yaml").write_text(yaml.safe_dump(BASE))
    assert Settings.from_env({"PTDATA_HOME": str(tmp_path)}).config_path == tmp_path / "ptdata.yaml"
    with pytest.raises(ConfigError, match="PTDATA_ENGINE"):
        Settings.from_env({"PTDATA_HOME": str(tmp_path), "PTDATA_ENGINE": "spark"})


def test_readme_example_config_is_valid(tmp_path):
    import re

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "gsm8k_test.jsonl.gz").write_bytes(b"")
    cfg = _parse(yaml.safe_load(block), tmp_path, {"PG_PASSWORD": "pw", "API_TOKEN": "token"}).pipeline
    assert {s.kind for s in cfg.sources} == {"files", "sql", "http", "web", "rollouts"}


def test_per_source_quality_rules_and_languages_are_validated_at_load(tmp_path):
    def source(**extra):
        return {"start_date": "2026-11-01", "sources": [{"name": "a", "regime": "sft", "kind": "files", **extra}]}

    cfg = _parse(source(quality={"length": {"max_chars": 8000}}, allowed_languages=["en", "de"]), tmp_path)
    rules = cfg.pipeline.sources[0].quality_rules()
    assert rules.length.max_chars == 8000 and rules.language.allowed == ("en", "de")
    with pytest.raises(ConfigError, match=r"sources\[0\]: quality.lenght: unknown rule or key"):
        _parse(source(quality={"lenght": {}}), tmp_path)
    with pytest.raises(ConfigError, match=r"sources\[0\]: quality.length.max_chars: Input should be greater"):
        _parse(source(quality={"length": {"max_chars": 0}}), tmp_path)
    with pytest.raises(ConfigError, match=r"sources\[0\].allowed_languages\[0\]"):
        _parse(source(allowed_languages=["English"]), tmp_path)
