"""Gold assets: the tokenizer, gold_<regime> (tokenized, masked and, for sft and text, packed rows), and
gold_rejections. Each gold partition records the SHA-256 of the tokenizer it was built with; a new tokenizer
makes every gold partition stale (gold depends on the tokenizer asset, whose data version is that hash)."""

from collections import Counter

import dagster as dg
import numpy as np

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.lake import Lake
from ptdata.core.regimes import regime as regime_spec
from ptdata.core.regimes import regime_names
from ptdata.defs.factory import (
    SINGLE_RUN,
    Writer,
    column_schema,
    combined_version,
    exclusive_write,
    partition_dates,
    report_audits,
)
from ptdata.defs.parts import regime_parts_asset
from ptdata.defs.resources import PtdataResource
from ptdata.gold.audits import GOLD_CHECKS, audit_staged
from ptdata.gold.stage import (
    GOLD_CODE_VERSION,
    GOLD_SCHEMAS,
    TOKENIZER,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    GoldInputError,
    StagedGold,
    load_lake_tokenizer,
    stage_gold,
    stage_tokenizer,
    tokenizer_settings,
)
from ptdata.gold.templates import chat_template


def tokenizer_asset(cfg: LoadedConfig) -> dg.AssetsDefinition:
    settings = tokenizer_settings(cfg)
    trained = cfg.pipeline.tokenizer.path is None

    @dg.asset(
        name="tokenizer",
        group_name="gold",
        code_version=stable_hash(settings),
        backfill_policy=SINGLE_RUN,
        # ptdata's own tokenizer is trained on silver text the first time: silver must come first
        deps=[f"silver_{r}" for r in regime_names()] if trained else [],
        kinds={"huggingface"},
        description="The tokenizer every gold table is built with: the configured one, or a byte-level BPE "
        "ptdata trains once on silver text. gold/tokenizer/tokenizer.json, loadable with Tokenizer.from_file.",
        check_specs=[
            dg.AssetCheckSpec(
                "chat_template", asset="tokenizer", blocking=True, description="the template's tokens exist"
            )
        ],
    )
    def _tokenizer(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - events
        cfg = ptdata.load_config()
        lake = ptdata.lake()
        with exclusive_write(context, ptdata) as writer:
            try:
                staged, info = stage_tokenizer(lake, cfg, writer.stage_id)
            except (GoldInputError, ValueError) as e:
                raise dg.Failure(description=str(e)) from None
            problem = ""
            try:
                chat_template(
                    cfg.pipeline.tokenizer.chat_template,
                    load_lake_tokenizer(lake, staged[TOKENIZER_FILE].rsplit("/", 1)[0]),
                )
            except ValueError as e:
                problem = str(e)
            yield dg.AssetCheckResult(
                asset_key="tokenizer",
                check_name="chat_template",
                passed=not problem,
                metadata={"chat_template": cfg.pipeline.tokenizer.chat_template},
                description=problem or None,
            )
            if problem:
                raise dg.Failure(description=f"tokenizer not published: {problem}")
            lake.publish(staged[TOKENIZER_CONFIG_FILE], TOKENIZER, TOKENIZER_CONFIG_FILE)
            lake.publish(staged[TOKENIZER_FILE], TOKENIZER, TOKENIZER_FILE)
            tok = load_lake_tokenizer(lake)
            sha = tok.sha256()
            yield dg.MaterializeResult(
                metadata={
                    "sha256": sha,
                    "vocab_size": tok.vocab_size,
                    "how": info["how"],
                    **writer.figures(info["records"]),
                    "special_tokens": list(tok.special_tokens),
                    "path": dg.MetadataValue.path(lake.path(TOKENIZER, TOKENIZER_FILE)),
                },
                data_version=dg.DataVersion(sha),
            )

    return _tokenizer


def gold_asset(regime: str, partitions: dg.PartitionsDefinition, cfg: LoadedConfig) -> dg.AssetsDefinition:
    name = f"gold_{regime}"
    p = cfg.pipeline
    version = f"{GOLD_CODE_VERSION}-{stable_hash([p.packing, p.tokenizer.chat_template, p.tokenizer.loss_on])}"
    packed = regime_spec(regime).packs

    @dg.asset(
        name=name,
        group_name="gold",
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        code_version=version,
        deps=[f"silver_{regime}", "tokenizer"],
        kinds={"parquet", "numpy"},
        description=f"silver_{regime} rendered through the chat template and tokenized with its loss mask"
        + (", packed best-fit decreasing into seq_len rows." if packed else ", one record a row."),
        check_specs=[
            dg.AssetCheckSpec(c, asset=name, blocking=True, description=d)
            for c, d in (
                ("tokens_valid", "ids in the vocabulary; ids, masks and positions aligned; rows within seq_len"),
                ("masks", "every sequence trains a token, and its last trained token ends a turn"),
                ("packing_efficiency", "real tokens / capacity at least packing.min_efficiency"),
                ("accounting", "silver = records in gold rows + gold_rejections"),
            )
        ],
    )
    def _gold(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - events
        cfg = ptdata.load_config()
        lake = ptdata.lake()
        with exclusive_write(context, ptdata) as writer:
            staged: list[StagedGold] = []
            try:
                tok = load_lake_tokenizer(lake)
                for date in partition_dates(context):
                    staged.append(stage_gold(lake, cfg, regime, date, writer.stage_id, tok))
            except (GoldInputError, ValueError) as e:
                raise dg.Failure(description=str(e)) from None
            audits: list[tuple] = [(st.date, audit_staged(lake, cfg, st, tok)) for st in staged]
            yield from report_audits(name, audits, GOLD_CHECKS, staged_at=lake.staging(writer.stage_id, url=True))
            versions = {}
            for st in staged:
                lake.publish(st.rejections_staged, st.rejections)
                versions[st.date.isoformat()] = lake.data_version(lake.publish(st.gold_staged, st.gold))
            yield dg.MaterializeResult(
                metadata=_gold_metadata(staged, versions, lake, name, cfg, writer),
                data_version=dg.DataVersion(combined_version(versions)),
            )

    return _gold


def _gold_metadata(
    staged: list[StagedGold], versions: dict[str, str], lake: Lake, name: str, cfg: LoadedConfig, writer: Writer
) -> dict:
    reasons: Counter[str] = Counter()
    for st in staged:
        reasons.update(st.reasons)
    tokens = sum(st.tokens for st in staged)
    figures = writer.figures(sum(st.silver_rows for st in staged))
    capacity = sum(st.capacity for st in staged)
    lengths = np.sort(np.concatenate([st.lengths for st in staged]))
    n = len(lengths)
    quantiles = {f"p{q}": int(lengths[min(n - 1, n * q // 100)]) for q in (50, 90, 99)} if n else {}
    return {
        "dagster/row_count": sum(st.rows for st in staged),
        "dagster/column_schema": column_schema(GOLD_SCHEMAS[staged[0].regime]),
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
        **figures,
        "tokens_per_s": round(tokens / figures["seconds"], 1) if figures["seconds"] else 0.0,
        "data_versions": versions,
        "path": dg.MetadataValue.path(catalog.table(name).url(lake)),
    }


def gold_rejections_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    return regime_parts_asset(
        catalog.GOLD_REJECTIONS,
        partitions,
        GOLD_CODE_VERSION,
        "Every silver record gold could not use (too long for seq_len, a prompt over max_prompt_tokens), with why.",
    )
