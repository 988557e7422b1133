"""Gold assets: the tokenizer, gold_<regime> (tokenized, masked and, for the regimes that pack, packed rows), and
gold_rejections; specs of the staged-asset factory (ptdata/defs/factory.py), the work is ptdata/gold/. Each gold
partition records the SHA-256 of the tokenizer it was built with; a new tokenizer makes every gold partition stale
(gold depends on the tokenizer asset, whose data version is that hash)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import dagster as dg
import numpy as np

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.outcome import Outcome
from ptdata.core.regimes import regime as regime_spec
from ptdata.core.regimes import regime_names
from ptdata.defs.factory import Gate, Staged, StagedAssetSpec, StagedFile, Step, staged_asset, table_asset
from ptdata.gold.audits import audit_staged
from ptdata.gold.lake_tokenizer import (
    TOKENIZER,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    GoldInputError,
    load_lake_tokenizer,
    stage_tokenizer,
    tokenizer_settings,
)
from ptdata.gold.stage import GOLD_CODE_VERSION, StagedGold, stage_gold
from ptdata.gold.templates import chat_template
from ptdata.gold.tokenize import LoadedTokenizer
from ptdata.rl.gate import GATE, audit_staged_prompts

GOLD_GATES = (
    Gate("tokens_valid", "ids in the vocabulary; ids, masks and positions aligned; rows within seq_len"),
    Gate("masks", "every sequence trains a token, and its last trained token ends a turn"),
    Gate("packing_efficiency", "real tokens / capacity at least packing.min_efficiency"),
    Gate("accounting", "silver = records in gold rows + gold_rejections"),
)
# RL prompts (gold layout "prompt") have their verifiers tried before they are published (ptdata/rl/gate.py)
PROMPT_GATES = (
    Gate(
        GATE,
        "each record's reference answer scores 1 with its verifier; a canary wrong answer and an empty one score 0",
    ),
)


def _verified(regime: str) -> bool:
    return regime_spec(regime).gold_layout == "prompt"


def gold_gates(regime: str) -> tuple[Gate, ...]:
    return GOLD_GATES + (PROMPT_GATES if _verified(regime) else ())


def _stage_tokenizer(step: Step, _: dt.date | None, __: Any) -> Staged:
    staged, info = stage_tokenizer(step.lake, step.cfg, step.stage_id)
    template = step.cfg.pipeline.tokenizer.chat_template
    tok = load_lake_tokenizer(step.lake, staged[TOKENIZER_FILE].rsplit("/", 1)[0])
    try:
        chat_template(template, tok)
        problem = ""
    except ValueError as e:
        problem = str(e)
    return Staged(
        None,
        files=[
            StagedFile(staged[TOKENIZER_CONFIG_FILE], TOKENIZER, name=TOKENIZER_CONFIG_FILE),
            StagedFile(staged[TOKENIZER_FILE], TOKENIZER, name=TOKENIZER_FILE),
        ],
        audits={"chat_template": Outcome("chat_template", not problem, {"chat_template": template}, problem)},
        records_in=info["records"],
        info=(tok, info["how"]),
        # the tokenizer's own hash, not its file's: what every gold partition records it was built with
        versions={"all": tok.sha256()},
    )


def _tokenizer_metadata(step: Step, staged: list[Staged], _: dict[str, str], __: dict[str, Any]) -> dict[str, Any]:
    tok, how = staged[0].info
    return {
        "sha256": tok.sha256(),
        "vocab_size": tok.vocab_size,
        "how": how,
        "special_tokens": list(tok.special_tokens),
        "path": dg.MetadataValue.path(step.lake.path(TOKENIZER, TOKENIZER_FILE)),
    }


def tokenizer_asset(cfg: LoadedConfig) -> dg.AssetsDefinition:
    settings = tokenizer_settings(cfg)
    trained = cfg.pipeline.tokenizer.path is None
    return staged_asset(
        StagedAssetSpec(
            name="tokenizer",
            group="gold",
            description="The tokenizer every gold table is built with: the configured one, or a byte-level BPE "
            "ptdata trains once on silver text. gold/tokenizer/tokenizer.json, loadable with Tokenizer.from_file.",
            code_version=stable_hash(settings),
            stage=_stage_tokenizer,
            metadata=_tokenizer_metadata,
            gates=(Gate("chat_template", "the template's tokens exist"),),
            # ptdata's own tokenizer is trained on silver text the first time: silver must come first
            deps=[f"silver_{r}" for r in regime_names()] if trained else [],
            kinds=frozenset({"huggingface"}),
            input_errors=(GoldInputError, ValueError),
        )
    )


def _stage_gold(step: Step, date: dt.date | None, tok: LoadedTokenizer) -> Staged:
    regime = step.name.removeprefix("gold_")
    st = stage_gold(step.lake, step.cfg, regime, date, step.stage_id, tok, executor=step.executor)
    audits = audit_staged(step.lake, step.cfg, st, tok)
    if _verified(regime):
        audits[GATE] = audit_staged_prompts(step.lake, st)
    return Staged(
        date,
        files=[StagedFile(st.rejections_staged, st.rejections), StagedFile(st.gold_staged, st.gold, date.isoformat())],
        audits=audits,
        records_in=st.silver_rows,
        bytes_in=step.lake.fs.size(step.lake.path(catalog.silver(regime).part(date))),
        info=st,
    )


def _gold_metadata(step: Step, runs: list[Staged], versions: dict[str, str], figures: dict[str, Any]) -> dict:
    staged: list[StagedGold] = [r.info for r in runs]
    cfg = step.cfg
    reasons: Counter[str] = Counter()
    for st in staged:
        reasons.update(st.reasons)
    tokens = sum(st.tokens for st in staged)
    capacity = sum(st.capacity for st in staged)
    lengths = np.sort(np.concatenate([st.lengths for st in staged]))
    n = len(lengths)
    quantiles = {f"p{q}": int(lengths[min(n - 1, n * q // 100)]) for q in (50, 90, 99)} if n else {}
    return {
        "dagster/row_count": sum(st.rows for st in staged),
        "silver_records": sum(st.silver_rows for st in staged),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "truncated_records": sum(st.truncated for st in staged),
        "tokens": tokens,
        "trained_tokens": sum(st.trained_tokens for st in staged),
        "packing_efficiency": round(tokens / capacity, 6) if capacity else None,
        "sequence_tokens": {"max": int(lengths[-1]), **quantiles} if n else {},
        "seq_len": cfg.pipeline.packing.seq_len,
        "chat_template": cfg.pipeline.tokenizer.chat_template,
        "tokenizer_sha256": staged[0].tokenizer_sha256,
        "tokens_per_s": round(tokens / figures["seconds"], 1) if figures["seconds"] else 0.0,
        "data_versions": versions,
    }


def gold_asset(regime: str, partitions: dg.PartitionsDefinition, cfg: LoadedConfig) -> dg.AssetsDefinition:
    p = cfg.pipeline
    packed = regime_spec(regime).packs
    return table_asset(
        catalog.gold(regime),
        partitions,
        description=f"silver_{regime} rendered through the chat template and tokenized with its loss mask"
        + (", packed best-fit decreasing into seq_len rows." if packed else ", one record a row."),
        code_version=f"{GOLD_CODE_VERSION}-{stable_hash([p.packing, p.tokenizer.chat_template, p.tokenizer.loss_on])}",
        stage=_stage_gold,
        metadata=_gold_metadata,
        gates=gold_gates(regime),
        deps=[f"silver_{regime}", "tokenizer"],
        kinds=frozenset({"parquet", "numpy"}),
        input_errors=(GoldInputError, ValueError),
        prepare=lambda step: load_lake_tokenizer(step.lake),
    )
