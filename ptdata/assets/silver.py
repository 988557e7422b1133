"""Silver assets. So far: eval_index, the n-gram index of the registered eval sets that decontamination reads."""

import hashlib

import dagster as dg

from ptdata.assets.common import SINGLE_RUN, column_schema
from ptdata.config import LoadedConfig, stable_hash
from ptdata.lake import TablePartition
from ptdata.resources import PtdataResource
from ptdata.transforms.decontam import INDEX_SCHEMA, EvalIndex
from ptdata.transforms.eval_io import load_eval_items

EVAL_INDEX_CODE_VERSION = "1"
EVAL_INDEX = TablePartition("silver", "eval_index")


def _eval_files_hash(cfg: LoadedConfig) -> str:
    """The eval files' contents belong in the code version: a changed eval set must make the index stale."""
    h = hashlib.sha256()
    for ev in cfg.pipeline.eval_sets:
        h.update(cfg.resolve(ev.path).read_bytes())
    return h.hexdigest()[:12]


def build_eval_index(cfg: LoadedConfig) -> tuple[EvalIndex, dict[str, int], list[str]]:
    """The index over every configured eval set, items per set, and the problems that must stop publishing."""
    items, per_set, problems = [], {}, []
    for ev in cfg.pipeline.eval_sets:
        try:
            loaded = load_eval_items(cfg.resolve(ev.path), ev.fields)
        except ValueError as e:
            problems.append(f"eval set {ev.name}: {e}")
            continue
        with_text = [(ev.name, item_id, text) for item_id, text in loaded if text.strip()]
        per_set[ev.name] = len(with_text)
        if not with_text:
            problems.append(f"eval set {ev.name}: no item has text in fields {ev.fields}")
        items += with_text
    return EvalIndex.build(items, cfg.pipeline.decontam.ngram), per_set, problems


def eval_index_asset(cfg: LoadedConfig) -> dg.AssetsDefinition:
    version = (
        f"{EVAL_INDEX_CODE_VERSION}-{stable_hash([*cfg.pipeline.eval_sets, cfg.pipeline.decontam])}"
        f"-{_eval_files_hash(cfg)}"
    )

    @dg.asset(
        name="eval_index",
        group_name="silver",
        code_version=version,
        backfill_policy=SINGLE_RUN,
        kinds={"parquet"},
        description="Word n-grams of every registered eval set's items; a training record sharing one is contaminated.",
        check_specs=[
            dg.AssetCheckSpec("coverage", asset="eval_index", blocking=True, description="every eval set indexed")
        ],
    )
    def _eval_index(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - events
        cfg = ptdata.load_config()
        lake = ptdata.lake()
        index, per_set, problems = build_eval_index(cfg)
        table = index.to_arrow()
        counts = table.group_by("eval_set").aggregate([("item_id", "count_distinct")]).to_pylist()
        indexed = {r["eval_set"]: r["item_id_count_distinct"] for r in counts}
        missing = {s: per_set[s] - indexed.get(s, 0) for s in per_set if per_set[s] != indexed.get(s, 0)}
        problems += [f"eval set {s}: {n} items with text have no n-gram in the index" for s, n in missing.items()]
        yield dg.AssetCheckResult(
            asset_key="eval_index",
            check_name="coverage",
            passed=not problems,
            metadata={"items_per_set": per_set, "indexed_items_per_set": indexed, "problems": problems[:10]},
            description=problems[0] if problems else None,
        )
        if problems:
            raise dg.Failure(description=f"eval_index not published: {problems[0]}")
        staged = lake.staged_path(EVAL_INDEX, f"{context.run_id}-eval_index")
        with lake.parquet_writer(staged, INDEX_SCHEMA.with_metadata(table.schema.metadata)) as w:
            w.write_table(table)
        version = lake.data_version(lake.publish(staged, EVAL_INDEX))
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.num_rows,
                "dagster/column_schema": column_schema(INDEX_SCHEMA),
                "ngram": cfg.pipeline.decontam.ngram,
                "items_per_set": per_set,
                "path": dg.MetadataValue.path(lake.path(EVAL_INDEX)),
            },
            data_version=dg.DataVersion(version),
        )

    return _eval_index
