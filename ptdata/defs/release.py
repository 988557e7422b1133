"""The release asset: a named, pinned export of gold partitions for trainers (see ptdata/release.py)."""

import datetime as dt
import os
import shutil

import dagster as dg
import pyarrow.parquet as pq

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake
from ptdata.core.regimes import regime_names
from ptdata.defs.factory import exclusive_write
from ptdata.defs.resources import PtdataResource
from ptdata.gold.stage import GOLD_CODE_VERSION, TOKENIZER_CODE_VERSION
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


def _publish_folder(lake: Lake, staged: str, final: str) -> None:
    """Swap the release folder in: the old one is moved aside first, then removed."""
    lake.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
    aside = f"{final}.replaced"
    if lake.fs.exists(final):
        lake.fs.mv(final, aside, recursive=True) if not lake.local else os.replace(final, aside)
    if lake.local:
        os.replace(staged, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        lake.fs.mv(staged, final, recursive=True)
        if lake.fs.exists(aside):
            lake.fs.rm(aside, recursive=True)
    lake.remove_empty_dirs(staged.rsplit("/", 1)[0])


def release_asset(cfg: LoadedConfig) -> dg.AssetsDefinition:
    @dg.asset(
        name="release",
        group_name="gold",
        code_version=RELEASE_CODE_VERSION,
        # `--partition-range` needs a single-run policy on every selected asset, unpartitioned ones included
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[*(f"gold_{r}" for r in regime_names()), "tokenizer"],
        kinds={"parquet"},
        description="A named release of gold partitions: manifest (data versions, config and tokenizer hashes, "
        "code versions), dataset card, Parquet shards and Megatron .bin/.idx, under <lake>/releases/<name>/.",
        check_specs=[
            dg.AssetCheckSpec("manifest", asset="release", blocking=True, description="the files match the manifest")
        ],
    )
    def _release(context: dg.AssetExecutionContext, config: ReleaseRunConfig, ptdata: PtdataResource):  # noqa: ANN202
        cfg = ptdata.load_config()
        lake = ptdata.lake()
        with exclusive_write(context, ptdata) as writer:
            name = config.name or cfg.pipeline.release.name
            try:
                dates = [dt.date.fromisoformat(d) for d in config.dates] or None
                release = plan_release(lake, cfg, name, dates)
            except (ReleaseError, ValueError) as e:
                raise dg.Failure(description=str(e)) from None
            out = f"{lake.staging(writer.stage_id)}/releases/{name}"
            manifest = build_release(lake, cfg, release, out, CODE_VERSIONS)
            problems = _audit(lake, manifest, out)
            yield dg.AssetCheckResult(
                asset_key="release",
                check_name="manifest",
                passed=not problems,
                metadata={"problems": problems[:5]},
                description=problems[0] if problems else None,
            )
            if problems:
                raise dg.Failure(description=f"release {name} not published: {problems[0]}")
            final = catalog.release_folder(lake, name)
            _publish_folder(lake, out, final)
            yield dg.MaterializeResult(
                metadata={
                    "name": name,
                    "partitions": len(manifest["partitions"]),
                    "tokens": {t: s["tokens"] for t, s in manifest["tokens"].items()},
                    **writer.figures(sum(p["rows"] for p in manifest["partitions"])),
                    "tokenizer_sha256": manifest["tokenizer_sha256"],
                    "manifest": dg.MetadataValue.json(manifest["partitions"][:50]),
                    "card": dg.MetadataValue.md(lake.read_bytes(f"{final}/README.md").decode()),
                    "path": dg.MetadataValue.path(final),
                },
                data_version=dg.DataVersion(lake.data_version(f"{final}/manifest.json")),
            )

    return _release
