"""The release asset: a named, pinned export of gold partitions for trainers (the work is ptdata/release/build.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake
from ptdata.core.outcome import Outcome
from ptdata.core.regimes import regime_names
from ptdata.defs.factory import Gate, Staged, StagedAssetSpec, StagedFolder, Step, staged_asset
from ptdata.gold.lake_tokenizer import TOKENIZER_CODE_VERSION
from ptdata.gold.stage import GOLD_CODE_VERSION
from ptdata.release.build import RELEASE_CODE_VERSION, ReleaseError, build_release, plan_release, read_megatron_index
from ptdata.silver.signatures import SIGNATURES_CODE_VERSION
from ptdata.silver.stage import SILVER_CODE_VERSION

CODE_VERSIONS = {
    "signatures": SIGNATURES_CODE_VERSION,
    "silver": SILVER_CODE_VERSION,
    "tokenizer": TOKENIZER_CODE_VERSION,
    "gold": GOLD_CODE_VERSION,
    "release": RELEASE_CODE_VERSION,
}


class ReleaseRunConfig(dg.Config):
    """Launchpad settings of a release: its name (default: release.name of the config) and its dates (default:
    every materialized gold partition)."""

    name: str = ""
    dates: list[str] = []


def _audit(lake: Lake, manifest: dict, out: str) -> list[str]:
    """The release folder read back against its manifest."""
    problems = []
    for p in manifest["partitions"]:
        path = lake.path(catalog.table(p["table"]).part(dt.date.fromisoformat(p["date"])))
        if lake.data_version(path) != p["data_version"]:
            problems.append(f"{p['table']} {p['date']} changed while the release was built")
    for table, shards in manifest["shards"].items():
        rows = sum(pq.read_metadata(f"{out}/{s['file']}", filesystem=lake.arrow_fs).num_rows for s in shards)
        want = sum(p["rows"] for p in manifest["partitions"] if p["table"] == table)
        if rows != want:
            problems.append(f"{table}: {rows} rows in the shards, {want} in its gold partitions")
    for table, info in manifest["megatron"].items():
        _, sizes, _ = read_megatron_index(lake.read_bytes(f"{out}/megatron/{table}.idx"))
        want = sum(p["tokens"] for p in manifest["partitions"] if p["table"] == table)
        if int(sizes.sum()) != want or lake.fs.size(f"{out}/megatron/{table}.bin") != want * (
            2 if info["dtype"] == "uint16" else 4
        ):
            problems.append(f"{table}: the Megatron files do not hold its {want} tokens")
    return problems


def _stage(step: Step, _: dt.date | None, config: ReleaseRunConfig) -> Staged:
    name = config.name or step.cfg.pipeline.release.name
    try:
        dates = [dt.date.fromisoformat(d) for d in config.dates] or None
    except ValueError as e:
        raise ReleaseError(f"release {name}: {e}") from None
    release = plan_release(step.lake, step.cfg, name, dates)
    out = f"{step.lake.staging(step.stage_id)}/releases/{name}"
    manifest = build_release(step.lake, step.cfg, release, out, CODE_VERSIONS, step.executor)
    problems = _audit(step.lake, manifest, out)
    desc = f"release {name}: {problems[0]}" if problems else ""
    return Staged(
        None,
        folders=[StagedFolder(out, catalog.release_folder(step.lake, name), "manifest.json")],
        audits={"manifest": Outcome("manifest", not problems, {"problems": problems[:5]}, desc)},
        records_in=sum(p["rows"] for p in manifest["partitions"]),
        info=(name, manifest),
    )


def _metadata(step: Step, staged: list[Staged], _: dict[str, str], __: dict[str, Any]) -> dict[str, Any]:
    name, manifest = staged[0].info
    final = catalog.release_folder(step.lake, name)
    return {
        "name": name,
        "partitions": len(manifest["partitions"]),
        "tokens": {t: s["tokens"] for t, s in manifest["tokens"].items()},
        "tokenizer_sha256": manifest["tokenizer_sha256"],
        "manifest": dg.MetadataValue.json(manifest["partitions"][:50]),
        "card": dg.MetadataValue.md(step.lake.read_bytes(f"{final}/README.md").decode()),
        "path": dg.MetadataValue.path(final),
    }


def release_asset(cfg: LoadedConfig) -> dg.AssetsDefinition:
    return staged_asset(
        StagedAssetSpec(
            name="release",
            group="gold",
            description="A named release of gold partitions: manifest (data versions, config and tokenizer hashes, "
            "code versions), dataset card, Parquet shards and Megatron .bin/.idx, under <lake>/releases/<name>/.",
            code_version=RELEASE_CODE_VERSION,
            stage=_stage,
            metadata=_metadata,
            gates=(Gate("manifest", "the files match the manifest"),),
            deps=[*(f"gold_{r}" for r in regime_names()), "tokenizer"],
            input_errors=(ReleaseError,),
            config_schema=ReleaseRunConfig,
        )
    )
