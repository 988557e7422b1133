"""The staged-asset factory: the one lock → stage → audit → report → publish → metadata skeleton every asset that
writes the lake runs (ARCHITECTURE.md, principle 3). An asset is a `StagedAssetSpec`: its name, gates, code version
and dependencies, and two plain functions, `stage` (one partition, or the unpartitioned asset once) and `metadata`.

Inside the asset, for the run's partitions: the writer's partition locks are taken (a second run stops at once),
what earlier runs left staged is removed, each partition is staged and audited, every gate is reported as an
`AssetCheckResult` (ERROR for blocking gates, WARN for the others), and only when every blocking gate passed are
the staged files published, in order, and the materialization recorded with its data version and the write's
time, CPU and cost. A failed gate raises `dg.Failure` naming it: nothing is published, the staged files are kept
for inspection, and the step is not retried (the same data fails the same audit again).
"""

import contextlib
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa

from ptdata.core.catalog import Table
from ptdata.core.config import ConfigError, LoadedConfig
from ptdata.core.drift import drift_outcomes, write_stats
from ptdata.core.executor import Executor, worker_cpu_seconds
from ptdata.core.lake import PART_FILE, Lake, TablePartition
from ptdata.core.locks import PartitionBusy, partition_locks
from ptdata.core.outcome import Outcome
from ptdata.defs.resources import PtdataResource

SINGLE_RUN = dg.BackfillPolicy.single_run()


def daily_partitions(start_date: dt.date) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, so data that lands today can be ingested today
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), end_offset=1)


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The dates of a run: one partition, or a range under the single-run backfill policy."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]


def combined_version(versions: Mapping[str, str]) -> str:
    """A data version for a run: the partition's own when there is one, else a hash over the partitions'."""
    if len(versions) == 1:
        return next(iter(versions.values()))
    return hashlib.sha256("\n".join(f"{k}={v}" for k, v in sorted(versions.items())).encode()).hexdigest()


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


@dataclass(frozen=True)
class Gate:
    name: str
    description: str
    blocking: bool = True


# the drift monitor of the tables that have one (bronze and silver): WARN, from each partition's statistics
DRIFT = "drift"


@dataclass(frozen=True)
class StagedFile:
    """A staged file and the live file it replaces; `version_key` names its data version (None: not versioned)."""

    staged: str
    part: TablePartition
    version_key: str | None = None
    name: str = PART_FILE


@dataclass(frozen=True)
class StagedFolder:
    """A staged folder (a release) and where it is published; its data version is that of its `version_file`."""

    staged: str
    final: str
    version_file: str
    version_key: str = "all"


@dataclass
class Staged:
    """What `stage` left for one partition (date None: an unpartitioned asset): its files, in publishing order,
    each gate's outcome, and what else its metadata reads."""

    date: dt.date | None
    files: list[StagedFile] = field(default_factory=list)
    folders: list[StagedFolder] = field(default_factory=list)
    audits: dict[str, Outcome] = field(default_factory=dict)
    records_in: int | None = 0  # None: not known (a SQL model's query does not say what it read)
    bytes_in: int = 0  # the bytes of its input (landing files, or the partition file it reads), when known
    stats: dict[str, Any] | None = None  # the drift check's statistics of this partition
    info: Any = None  # the step's own figures, for `metadata`
    # versions known before publishing: files not written by this asset (its parts), or a version of its own
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """What a `stage` function gets: the run's config (parsed once), the lake, where to stage, and the executor of
    its per-record work."""

    cfg: LoadedConfig
    lake: Lake
    ptdata: PtdataResource
    stage_id: str
    context: dg.AssetExecutionContext
    executor: Executor

    @property
    def name(self) -> str:
        return self.context.asset_key.to_user_string()


@dataclass(frozen=True)
class StagedAssetSpec:
    name: str
    group: str
    description: str
    code_version: str
    stage: Callable[[Step, dt.date | None, Any], Staged]
    # (step, the run's staged partitions, their data versions, the write's time/CPU/cost figures) -> metadata
    metadata: Callable[[Step, list[Staged], dict[str, str], dict[str, Any]], dict[str, Any]]
    gates: tuple[Gate, ...] = ()
    table: Table | None = None  # the table it writes: its column schema and path in the metadata
    partitions: dg.PartitionsDefinition | None = None
    deps: Sequence[str | dg.AssetDep] = ()
    kinds: frozenset[str] = frozenset({"parquet"})
    # the errors of missing or unusable inputs: a Failure with their message, not a stack trace
    input_errors: tuple[type[Exception], ...] = ()
    # run once before the partitions are staged (an index, a tokenizer); its result is `stage`'s third argument
    prepare: Callable[[Step], Any] | None = None
    drift: str = ""  # the drift check's description, for the tables that have one (their stage sets `stats`)
    retry_policy: dg.RetryPolicy | None = None
    freshness_policy: dg.FreshnessPolicy | None = None
    # launchpad settings (a dg.Config class), handed to `stage` as its third argument when there is no `prepare`
    config_schema: type[dg.Config] | None = None
    definition_metadata: dict[str, Any] = field(default_factory=dict)  # shown on the asset itself (a model's SQL)


def table_asset(table: Table, partitions: dg.PartitionsDefinition | None, **spec: Any) -> dg.AssetsDefinition:
    """The asset that writes `table`: its name, group (the table's layer) and partitioning from the catalog."""
    return staged_asset(StagedAssetSpec(name=table.name, group=table.layer, table=table, partitions=partitions, **spec))


def staged_asset(spec: StagedAssetSpec) -> dg.AssetsDefinition:
    gates = spec.gates + ((Gate(DRIFT, spec.drift, blocking=False),) if spec.drift else ())
    extra: dict[str, Any] = {}
    if spec.retry_policy is not None:
        extra["retry_policy"] = spec.retry_policy
    if spec.freshness_policy is not None:
        extra["freshness_policy"] = spec.freshness_policy

    @dg.asset(
        name=spec.name,
        group_name=spec.group,
        partitions_def=spec.partitions,
        # `--partition-range` needs a single-run policy on every selected asset, unpartitioned ones included
        backfill_policy=SINGLE_RUN,
        code_version=spec.code_version,
        deps=list(spec.deps),
        kinds=set(spec.kinds),
        description=spec.description,
        check_specs=[
            dg.AssetCheckSpec(g.name, asset=spec.name, blocking=g.blocking, description=g.description) for g in gates
        ],
        config_schema=spec.config_schema.to_config_schema() if spec.config_schema else None,
        metadata=spec.definition_metadata or None,
        **extra,
    )
    def _asset(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - a generator of events
        run_config = spec.config_schema(**context.op_execution_context.op_config) if spec.config_schema else None
        yield from _run(spec, gates, context, ptdata, run_config)

    return _asset


def _run(
    spec: StagedAssetSpec,
    gates: tuple[Gate, ...],
    context: dg.AssetExecutionContext,
    ptdata: PtdataResource,
    run_config: dg.Config | None,
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    try:
        cfg, executor = ptdata.config(), ptdata.executor()
    except ConfigError as e:  # the same file or variable fails the same way again: not retried
        raise dg.Failure(description=str(e), allow_retries=False) from None
    lake = ptdata.lake()
    dates: list[dt.date | None] = partition_dates(context) if spec.partitions is not None else [None]
    with exclusive_write(context, ptdata) as writer:
        step = Step(cfg, lake, ptdata, writer.stage_id, context, executor)
        try:
            shared = spec.prepare(step) if spec.prepare else run_config
            staged = [spec.stage(step, date, shared) for date in dates]
        except spec.input_errors as e:
            raise dg.Failure(description=str(e), allow_retries=False) from None
        if spec.drift:
            stats = {st.date: st.stats for st in staged}
            drifts = drift_outcomes(lake, spec.name, stats, cfg.pipeline.monitoring)
            for st in staged:
                st.audits[DRIFT] = drifts[st.date]
        yield from report_gates(spec.name, gates, staged, lake.staging(writer.stage_id, url=True))
        versions: dict[str, str] = {}
        for st in staged:
            versions |= st.versions
            for f in st.files:
                final = lake.publish(f.staged, f.part, f.name)
                if f.version_key is not None:
                    versions[f.version_key] = lake.data_version(final)
            for f in st.folders:
                lake.publish_folder(f.staged, f.final)
                versions[f.version_key] = lake.data_version(f"{f.final}/{f.version_file}")
            if spec.drift:
                write_stats(lake, spec.name, st.date, st.stats)
        figures = writer.figures(sum(st.records_in or 0 for st in staged), sum(st.bytes_in for st in staged))
        if any(st.records_in is None for st in staged):
            figures = {k: v for k, v in figures.items() if k not in ("records_in", "records_per_s")}
        metadata = {**spec.metadata(step, staged, versions, figures), **figures}
        if spec.table is not None:
            if spec.table.schema is not None:
                metadata["dagster/column_schema"] = column_schema(spec.table.schema)
            metadata["path"] = dg.MetadataValue.path(spec.table.url(lake))
        yield dg.MaterializeResult(
            metadata=metadata,
            data_version=dg.DataVersion(combined_version(versions)),
        )


def check_result(
    asset: str,
    name: str,
    per_date: Sequence[tuple[dt.date | None, Outcome]],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """One check result over all partitions of the run; it passes only when every partition's audit passed."""
    failed = [(d, o) for d, o in per_date if not o.passed]
    if per_date and per_date[0][0] is None:
        metadata = dict(per_date[0][1].metadata)
    else:
        metadata = {"partitions": {d.isoformat(): o.metadata for d, o in per_date}}
        if failed:
            metadata["failed_partitions"] = [d.isoformat() for d, _ in failed]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=not failed,
        severity=severity,
        metadata=metadata,
        description=failed[0][1].description if failed else None,
    )


def report_gates(
    name: str, gates: Sequence[Gate], staged: Sequence[Staged], staged_at: str
) -> Iterator[dg.AssetCheckResult]:
    """Yield one check result per gate over the run's partitions, then raise dg.Failure naming the first failed
    blocking gate: the asset publishes nothing, and the run fails with that one-line reason. Returns normally
    when every blocking gate passed."""
    for gate in gates:
        severity = dg.AssetCheckSeverity.ERROR if gate.blocking else dg.AssetCheckSeverity.WARN
        yield check_result(name, gate.name, [(st.date, st.audits[gate.name]) for st in staged], severity)
    failed = [st.audits[g.name] for st in staged for g in gates if g.blocking and not st.audits[g.name].passed]
    if failed:
        raise dg.Failure(
            description=f"{name} not published: {failed[0].description}",
            metadata={"staged_files_kept_at": staged_at},
            allow_retries=False,  # the same data fails the same audit again
        )


@dataclass
class Writer:
    """One asset's write of its run's partitions: where it stages, and what it costs."""

    stage_id: str  # `<run id>-<asset>`: the staging folder no other writer uses
    usd_per_core_hour: float
    wall0: float = field(default_factory=time.perf_counter)
    cpu0: float = field(default_factory=lambda: time.process_time() + worker_cpu_seconds())

    def figures(self, records_in: int, bytes_in: int = 0) -> dict[str, float | int]:
        """Time, CPU and cost of the write so far, for its metadata (the pipeline_cost mart and `ptdata size` read
        them; the UI plots them across runs). CPU time is the process's, all threads, plus its executor's worker
        processes' (ptdata/core/executor.py): steps run one at a time in a process (in-process executor) or in a
        process each (multiprocess executor), so it is this step's. CPU utilisation is CPU over wall seconds:
        2.0 is two cores busy for the whole write; MB/s is of the input the stage read, when it says."""
        seconds = time.perf_counter() - self.wall0
        cpu = time.process_time() + worker_cpu_seconds() - self.cpu0
        return {
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "cpu_utilisation": round(cpu / seconds, 2) if seconds else 0.0,
            "records_in": records_in,
            "records_per_s": round(records_in / seconds, 1) if seconds else 0.0,
            **({"mb_per_s": round(bytes_in / 1e6 / seconds, 2)} if bytes_in and seconds else {}),
            "usd": round(cpu / 3600 * self.usd_per_core_hour, 6),
        }


@contextlib.contextmanager
def exclusive_write(context: dg.AssetExecutionContext, ptdata: PtdataResource) -> Iterator[Writer]:
    """What every asset that writes the lake runs inside: it holds the locks of the partitions it writes (a second
    run for one of them waits up to automation.partition_wait_seconds, then stops, saying which run holds it,
    having written nothing), removes what earlier runs of the same asset left staged for them (a killed run, a
    failed audit), and times the write."""
    asset = context.asset_key.to_user_string()
    dates = partition_dates(context) if context.assets_def.partitions_def is not None else None
    keys = [d.isoformat() for d in dates] if dates is not None else ["all"]
    try:
        wait = ptdata.config().pipeline.automation.partition_wait_seconds
        with partition_locks(ptdata.settings.home / "locks", asset, keys, context.run_id, wait, context.log.info):
            stage_id = f"{context.run_id}-{asset}"
            for path in ptdata.lake().discard_staged(stage_id, dates):
                context.log.info(f"removed files an earlier run of {asset} left staged: {path}")
            yield Writer(stage_id, ptdata.config().pipeline.cost.usd_per_core_hour)
    except PartitionBusy as e:
        raise dg.Failure(
            description=f"{e}; this run wrote nothing for it. Re-run once that run has finished.",
            allow_retries=False,
        ) from None
