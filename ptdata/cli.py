"""The `ptdata` command: demo, materialize, status, size, validate-config (README.md, Commands)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ptdata.core import catalog
from ptdata.core.config import BUNDLED_DEMO_CONFIG, ConfigError, Settings, load_config
from ptdata.core.regimes import regime as regime_spec
from ptdata.core.regimes import regime_names
from ptdata.rl.dataplane.cli import add_parsers as add_dataplane_parsers

# The instance config the CLI writes into DAGSTER_HOME. Runs launched from the UI, a schedule or a sensor wait in
# Dagster's run queue: one at a time per partition, so a second run for a day waits for the first instead of
# stopping at its partition locks (ptdata/locks.py). The event log is Dagster's SQLite one, in Dagster's default
# place, with its engines kept (ptdata/defs/event_log.py); a class named in the file needs its folder written out.
DAGSTER_YAML_MARK = "# written by ptdata: rewritten when DAGSTER_HOME moves; remove this line to keep your edits"
DAGSTER_YAML = """\
{mark}
telemetry:
  enabled: false
run_queue:
  tag_concurrency_limits:
    - key: dagster/partition
      value: {{applyLimitPerUniqueValue: true}}
      limit: 1
event_log_storage:
  module: ptdata.defs.event_log
  class: PooledSqliteEventLogStorage
  config:
    base_dir: {event_logs}
"""


def dagster_yaml(home: Path) -> str:
    """The dagster.yaml of the instance at `home`."""
    return DAGSTER_YAML.format(mark=DAGSTER_YAML_MARK, event_logs=json.dumps(str(home.resolve() / "history" / "runs")))


def _prepare_dagster_home(settings: Settings) -> Path:
    """Runs are recorded in DAGSTER_HOME so the UI shows them; default $PTDATA_HOME/dagster."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    yaml_file = home / "dagster.yaml"
    # a file of ours is kept current (a copied or moved home must not write into the old one's event log); a file
    # without the mark is the user's
    written = yaml_file.read_text() if yaml_file.exists() else None
    if written is None or (written.startswith(DAGSTER_YAML_MARK) and written != dagster_yaml(home)):
        yaml_file.write_text(dagster_yaml(home))
    os.environ["DAGSTER_HOME"] = str(home)
    # the first open creates the instance's databases; runs started at once on a fresh home would race on it
    # (alembic: "more than one head"), so the first one creates them while the others wait
    import dagster as dg

    from ptdata.core.locks import waiting_lock

    with waiting_lock(home / ".ptdata-init.lock"), dg.DagsterInstance.get():
        pass
    return home


def _dates(args: argparse.Namespace) -> tuple[str, str] | None:
    """The run's partitions, or None when none is given (allowed when every selected asset is unpartitioned)."""
    if args.partition:
        return args.partition, args.partition
    if args.from_ and args.to:
        return args.from_, args.to
    if args.from_ or args.to:
        raise SystemExit("ptdata: give both --from D1 and --to D2")
    return None


class _Progress(logging.Handler):
    """Prints one line per step as the run goes: started, done with its time, or failed with its reason."""

    def __init__(self, total: int) -> None:
        super().__init__(logging.DEBUG)
        self.total = total
        self.done = 0
        self.started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_meta", {}).get("dagster_event")
        if event is None or not event.step_key:
            return
        kind, step = event.event_type_value, event.step_key
        if kind == "STEP_START":
            self.started[step] = time.perf_counter()
            print(f"[{self.done + 1}/{self.total}] {step} ...", flush=True)
        elif kind == "STEP_SUCCESS":
            self.done += 1
            secs = time.perf_counter() - self.started.get(step, time.perf_counter())
            print(f"[{self.done}/{self.total}] {step} done in {secs:.1f}s", flush=True)
        elif kind == "STEP_FAILURE":
            self.done += 1
            print(f"[{self.done}/{self.total}] {step} FAILED", flush=True)
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed:
                print(f"    check {data.asset_check_key.name} on {step}: failed", flush=True)


def run_materialize(settings: Settings, select: str, start: str | None, end: str | None) -> bool:
    """Materialize `select` for the partitions start..end (None: unpartitioned assets alone) in one run recorded in
    DAGSTER_HOME; True on success."""
    import dagster as dg

    from ptdata.defs.runs import execute, selected_keys

    _prepare_dagster_home(settings)
    progress = _Progress(total=len(selected_keys(settings, select)))
    if start is not None:  # a partition's stages will hand work to the workers: they start while Dagster plans
        _start_workers()
    with dg.DagsterInstance.get() as instance:
        result = execute(settings, select, start, end, instance, logger=progress)
    if not result.success:
        for ev in result.get_step_failure_events():
            print(f"ptdata: {ev.step_key} failed: {_root_cause(ev.step_failure_data.error)}", file=sys.stderr)
        print(f"ptdata: run {result.run_id} failed (see it in the UI: dagster dev)", file=sys.stderr)
    return result.success


def _start_workers() -> None:
    from ptdata.defs.resources import run_executor

    try:
        run_executor().start()
    except ConfigError:  # a bad PTDATA_WORKERS: the run's first stage reports it
        pass


def _root_cause(err) -> str:  # noqa: ANN001 - dagster's SerializableErrorInfo
    """The innermost error's message: Dagster wraps a step's exception in its own, which says only where."""
    if err is None:
        return "unknown error"
    while err.cause is not None:
        err = err.cause
    return err.message.strip()


def cmd_materialize(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    dates = _dates(args)
    if dates is None:
        from ptdata.defs.runs import partitioned_keys

        partitioned = partitioned_keys(settings, args.select)
        if partitioned:
            names = ", ".join(sorted(k.to_user_string() for k in partitioned)[:5])
            raise SystemExit(f"ptdata: give --partition D, or --from D1 --to D2 (daily partitioned: {names})")
        print(f"materializing {args.select}")
        return 0 if run_materialize(settings, args.select, None, None) else 1
    start, end = dates
    for d in (start, end):
        try:
            dt.date.fromisoformat(d)
        except ValueError:
            raise ValueError(f"{d!r} is not a date YYYY-MM-DD") from None
    print(f"materializing {args.select} for {start}" + (f" .. {end}" if end != start else ""))
    return 0 if run_materialize(settings, args.select, start, end) else 1


def partition_states(settings: Settings, instance) -> list[tuple[str, dict[str, int] | str]]:  # noqa: ANN001
    """Per asset: partitions by state (materialized, failed, in progress, missing) for a partitioned asset, or the
    time of its last materialization for an unpartitioned one, from the Dagster instance's records."""
    import dagster as dg

    from ptdata.defs.location import build_definitions

    graph = build_definitions(settings).resolve_asset_graph()
    out: list[tuple[str, dict[str, int] | str]] = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        partitions = graph.get(key).partitions_def
        if partitions is None:
            event = instance.get_latest_materialization_event(key)
            when = dt.datetime.fromtimestamp(event.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if event else None
            out.append((key.to_user_string(), f"materialized {when}" if when else "never materialized"))
            continue
        keys = partitions.get_partition_keys()
        status = instance.get_status_by_partition(key, keys, partitions) or {}
        counts = {"materialized": 0, "failed": 0, "in_progress": 0, "missing": 0}
        for k in keys:
            state = status.get(k)
            name = {
                dg.AssetPartitionStatus.MATERIALIZED: "materialized",
                dg.AssetPartitionStatus.FAILED: "failed",
                dg.AssetPartitionStatus.IN_PROGRESS: "in_progress",
            }.get(state, "missing")
            counts[name] += 1
        out.append((key.to_user_string(), counts))
    return out


def cmd_status(args: argparse.Namespace) -> int:
    import dagster as dg

    settings = Settings.from_env()
    _prepare_dagster_home(settings)
    with dg.DagsterInstance.get() as instance:
        states = partition_states(settings, instance)
    print(f"{'asset':<24} {'materialized':>12} {'failed':>7} {'running':>8} {'missing':>8}")
    for name, state in states:
        if isinstance(state, str):
            print(f"{name:<24} {state}")
        else:
            print(
                f"{name:<24} {state['materialized']:>12} {state['failed']:>7} {state['in_progress']:>8} "
                f"{state['missing']:>8}"
            )
    return 0


def cmd_size(args: argparse.Namespace) -> int:
    import dagster as dg

    from ptdata.defs.location import build_definitions
    from ptdata.defs.stage_runs import read_stage_runs
    from ptdata.ops.cost import NoHistory, project

    if args.last < 1:
        raise ValueError("--last is at least 1")
    settings = Settings.from_env()
    home = _prepare_dagster_home(settings)
    keys = build_definitions(settings).resolve_asset_graph().toposorted_asset_keys
    order = {k.to_user_string(): i for i, k in enumerate(keys)}  # stages print in pipeline order
    price = settings.load_config().pipeline.cost.usd_per_core_hour
    with dg.DagsterInstance.get() as instance:
        runs = read_stage_runs(instance, keys)
    try:
        p = project(runs, price, tokens=args.tokens, records=args.records, hours=args.hours, last=args.last)
    except NoHistory as e:
        print(f"ptdata: {e} in {home}; run `ptdata demo` or materialize some partitions first", file=sys.stderr)
        return 1
    target = f"{args.tokens:,.0f} gold tokens = " if args.tokens is not None else ""
    print(
        f"target: {target}{p.total.records:,.0f} gold records ({p.tokens_per_gold_record:,.1f} tokens per gold record)"
    )
    print(
        f"measured: the last {args.last} runs of each stage in {home}; ${price} per core-hour; {args.hours:g} wall hours"
    )
    print(
        f"\n{'stage':<20} {'runs':>4} {'records':>15} {'records/cpu-s':>13} {'core-hours':>11} {'cores':>6} "
        f"{'wall hours':>10} {'usd':>12}"
    )
    for st in [*sorted(p.stages, key=lambda st: order[st.asset]), p.total]:
        rate = f"{st.records_per_cpu_second:,.1f}" if st.records_per_cpu_second is not None else "-"
        print(
            f"{st.asset:<20} {st.runs:>4} {st.records:>15,.0f} {rate:>13} {st.core_hours:>11,.3f} {st.cores:>6} "
            f"{st.wall_hours:>10,.3f} {st.usd:>12,.4f}"
        )
    if p.not_projected:
        print("\nnot projected: " + ", ".join(f"{a} ({why})" for a, why in p.not_projected.items()))
    return 0


def _positive(text: str) -> float:
    """A positive number, written as 2000000, 2_000_000 or 2e6."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number above 0")
    return value


def cmd_validate_config(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    path = Path(args.path) if args.path else settings.config_path
    try:
        cfg = load_config(path, settings.env())
    except ConfigError as e:
        print(f"ptdata: invalid config {e}", file=sys.stderr)
        return 2
    p = cfg.pipeline
    print(f"{cfg.path}: valid")
    print(f"  start_date {p.start_date}; {len(p.sources)} sources; {len(p.eval_sets)} eval sets")
    for s in p.sources:
        shape = s.shape if isinstance(s.shape, str) else "field map"
        print(f"  - {s.name:<20} {s.regime:<10} {s.kind:<5} shape={shape:<15} license={s.license}")
    return 0


def print_summary(settings: Settings, dates: Sequence[dt.date]) -> None:
    """Per layer and regime: rows in, rows out, and what was set aside by reason, read back from the lake."""
    import duckdb

    lake = settings.lake
    cfg = settings.load_config().pipeline
    seq_len = cfg.packing.seq_len
    days = [d.isoformat() for d in dates]
    con = duckdb.connect()

    def count(table: catalog.Table) -> int:
        return con.execute(
            f"select count(*) from read_parquet('{lake}/{table.relpath}/**/*.parquet', hive_partitioning=true)"
            " where cast(date as varchar) in (select unnest(?))",
            [days],
        ).fetchone()[0]

    def reasons(table: catalog.Table, regime: str) -> list[tuple[str, int]]:
        return con.execute(
            f"select reason, count(*) from read_parquet('{lake}/{table.relpath}/**/*.parquet', hive_partitioning=true)"
            " where regime = ? and cast(date as varchar) in (select unnest(?)) group by reason order by 2 desc, 1",
            [regime, days],
        ).fetchall()

    for layer, records, inputs, aside, label in (
        ("bronze", catalog.bronze, "input records", catalog.BRONZE_QUARANTINE, "quarantined"),
        ("silver", catalog.silver, "bronze records", catalog.SILVER_REJECTIONS, "rejected"),
    ):
        print(f"\n{layer} (in = {inputs} = {layer} + {label}):")
        for regime in regime_names():
            out = count(records(regime))
            why = reasons(aside, regime)
            n = sum(c for _, c in why)
            listed = ", ".join(f"{r} {c}" for r, c in why) or "none"
            print(f"  {regime:<11} in {out + n:>6}  out {out:>6}  {label} {n:>4}: {listed}")
    print("\ngold (in = silver records = records in gold rows + rejected):")
    for regime in regime_names():
        table = f"read_parquet('{lake}/{catalog.gold(regime).relpath}/**/*.parquet', hive_partitioning=true)"
        tokens = catalog.token_column(regime)
        rows, records, n_tokens = con.execute(
            f"select count(*), coalesce(sum(len(record_ids)), 0), coalesce(sum(len({tokens})), 0) from {table}"
            " where cast(date as varchar) in (select unnest(?))",
            [days],
        ).fetchone()
        why = reasons(catalog.GOLD_REJECTIONS, regime)
        n = sum(c for _, c in why)
        listed = ", ".join(f"{r} {c}" for r, c in why) or "none"
        packed = f", {n_tokens / (rows * seq_len):.1%} of capacity" if regime_spec(regime).packs and rows else ""
        print(
            f"  {regime:<11} in {records + n:>6}  out {records:>6}  rejected {n:>4}: {listed}; "
            f"{rows:,} rows, {n_tokens:,} tokens{packed}"
        )


def cmd_demo(args: argparse.Namespace) -> int:
    from ptdata.demo.generate import DEMO_DAYS, write_demo_landing

    env = Settings.from_env()
    # the demo always runs the bundled demo config, whatever PTDATA_CONFIG says
    settings = Settings(home=env.home, config_path=BUNDLED_DEMO_CONFIG, lake=env.lake, engine=env.engine)
    settings.home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    counts = write_demo_landing(settings.home)
    records = sum(sum(days.values()) for days in counts.values())
    print(f"demo landing zone: {records} input records from {len(counts)} sources under {settings.landing}")
    if args.landing_only:
        return 0
    start, end = DEMO_DAYS[0].isoformat(), DEMO_DAYS[-1].isoformat()
    print(f"materializing every asset for {start} .. {end}")
    if not run_materialize(settings, "*", start, end):
        return 1
    print_summary(settings, DEMO_DAYS)
    release = f"{settings.lake}/releases/{settings.load_config().pipeline.release.name}"
    print(f"\nrelease: {release}  (manifest.json, README.md dataset card, shards/, megatron/)")
    print(f"\nlake: {settings.lake}   dagster runs: {settings.dagster_home}   ({time.perf_counter() - t0:.0f}s)")
    print(f"browse the assets and runs: PTDATA_HOME={settings.home} DAGSTER_HOME={settings.dagster_home} dagster dev")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptdata",
        description="Post-training data pipeline. Environment: PTDATA_HOME (default ./.ptdata), PTDATA_CONFIG, "
        "PTDATA_LAKE, DAGSTER_HOME (default $PTDATA_HOME/dagster).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="write the bundled demo landing data and materialize every asset for its days")
    demo.add_argument("--landing-only", action="store_true", help="write the demo landing data, materialize nothing")
    demo.set_defaults(func=cmd_demo)
    mat = sub.add_parser("materialize", help="materialize assets for one partition or a range, in one recorded run")
    mat.add_argument("--select", default="*", help="Dagster asset selection (default: every asset)")
    mat.add_argument("--partition", help="one date, YYYY-MM-DD")
    mat.add_argument("--from", dest="from_", help="first date of a range")
    mat.add_argument("--to", help="last date of a range (inclusive)")
    mat.set_defaults(func=cmd_materialize)
    status = sub.add_parser("status", help="every asset's partitions by state, from the Dagster instance")
    status.set_defaults(func=cmd_status)
    size = sub.add_parser(
        "size", help="project cores, wall hours and cost per stage for a target, from the measured past runs"
    )
    target = size.add_mutually_exclusive_group(required=True)
    target.add_argument("--tokens", type=_positive, help="gold tokens to produce")
    target.add_argument("--records", type=_positive, help="records to bring into gold (silver records)")
    size.add_argument("--hours", type=_positive, default=24.0, help="wall hours to finish in (default 24)")
    size.add_argument("--last", type=int, default=5, help="measure each stage over its last K runs (default 5)")
    size.set_defaults(func=cmd_size)
    val = sub.add_parser("validate-config", help="check a config file and print what it defines")
    val.add_argument("path", nargs="?", help="config file (default: PTDATA_CONFIG, else $PTDATA_HOME/ptdata.yaml)")
    val.set_defaults(func=cmd_validate_config)
    add_dataplane_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"ptdata: invalid config {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # a selection that matches nothing, a date that is not one
        print(f"ptdata: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`ptdata status | head`): what it wanted was printed; keep the exit-time flush quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
