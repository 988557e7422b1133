"""The tokenizer in the lake, that every gold table is built with: the configured one (a tokenizer.json or an HF
model folder), or ptdata's own byte-level BPE. That one is trained once, on the silver text in the lake when it is
first built, and kept: re-materializing keeps the same file while its settings (vocab_size, code version) are
unchanged, so the gold already built stays valid. It lives at `<lake>/gold/tokenizer/tokenizer.json` with a
tokenizer_config.json (end-of-text token, chat template).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.lake import Lake, partition_days
from ptdata.core.regimes import regime_names
from ptdata.gold.tokenize import EOS, LoadedTokenizer, load_tokenizer, train_bpe
from ptdata.silver.stage import iter_texts

TOKENIZER_CODE_VERSION = "1"
TOKENIZER = catalog.TOKENIZER.part()
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# ptdata's own tokenizer is trained on at most this many characters of silver text per vocabulary entry. Measured
# on 100k bench records (held-out tokens against a 50M-character corpus): at 8,192 entries 10M characters give
# 0.12% more tokens, at 32,768 entries 40M give 0.01%; training time grows with the corpus (11.7 s at 50M, 2.4 s
# at 10M, 2 cores). A lake trained under a larger cap keeps its tokenizer (see the module docstring).
TRAIN_CHARS_PER_ENTRY = 1_250
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
    """Silver text in (date, regime, row) order, up to TRAIN_CHARS_PER_ENTRY characters per vocabulary entry:
    the deterministic training corpus."""
    texts, chars, cap = [], 0, TRAIN_CHARS_PER_ENTRY * cfg.pipeline.tokenizer.vocab_size
    today = dt.date.today() + dt.timedelta(days=1)
    for day in partition_days(cfg.pipeline.start_date, today):
        for name in regime_names():
            part = catalog.silver(name).part(day)
            if not lake.exists(part):
                continue
            for _, _, text in iter_texts(lake, lake.path(part), name):
                texts.append(text)
                chars += len(text)
                if chars >= cap:
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
