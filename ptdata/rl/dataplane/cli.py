"""`ptdata dataplane serve` and `ptdata dataplane simulate`: the dataplane's commands, added to `ptdata`'s parser."""

from __future__ import annotations

import argparse
from pathlib import Path

from ptdata.core.config import Settings as Home


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return n


def cmd_serve(args: argparse.Namespace) -> int:
    from ptdata.core.lake import Lake
    from ptdata.rl.dataplane.buffer import Settings
    from ptdata.rl.dataplane.prompts import PromptSet, ReleaseError
    from ptdata.rl.dataplane.server import Dataplane, ServeOptions, serve, token_from_env

    home = Home.from_env()
    try:
        prompts = PromptSet.from_release(Lake(home.lake), args.release, args.seed)
    except ReleaseError as e:
        raise SystemExit(f"ptdata: {e}") from None
    settings = Settings(
        group_size=args.group_size,
        max_staleness=args.max_staleness,
        staleness_policy=args.staleness_policy,
        filter_zero_variance=args.filter_zero_variance,
        batch_size=args.batch_size,
        lease_timeout_s=args.lease_timeout,
        max_buffered=args.max_buffered,
    )
    plane = Dataplane(Path(args.dir), prompts, settings, token_from_env())
    options = ServeOptions(host=args.host, port=args.port, token=plane.token, max_body_bytes=args.max_body_mb << 20)
    serve(plane, options)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from ptdata.rl.dataplane.simulate import default_release, ok, report, simulate, started_server

    def run(url: str) -> int:
        result = simulate(
            url,
            args.workers,
            args.seconds,
            args.group_size,
            args.tokens,
            args.generate_ms / 1000,
            args.batch_size,
            args.max_staleness,
        )
        print(report(result))
        return 0 if ok(result) else 1

    if args.url:
        return run(args.url)
    serve_args = [
        "--group-size",
        str(args.group_size),
        "--max-staleness",
        str(args.max_staleness),
        "--batch-size",
        str(args.batch_size),
    ]
    with started_server(args.release or default_release(), serve_args) as url:
        return run(url)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    plane = sub.add_parser("dataplane", help="the RL dataplane: serve prompts, take rollouts, lease whole groups")
    commands = plane.add_subparsers(dest="dataplane_command", required=True, metavar="COMMAND")
    s = commands.add_parser("serve", help="serve a release's RL prompts and buffer the rollouts in --dir")
    s.add_argument("--release", required=True, help="the release whose gold_rlvr prompts are served")
    s.add_argument("--dir", required=True, help="the folder of the rollout log (kept across restarts)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8731)
    s.add_argument("--max-staleness", type=int, default=1, help="most policy versions a served rollout may lag")
    s.add_argument("--group-size", type=_positive, default=8, help="rollouts of a group (default 8)")
    s.add_argument("--batch-size", type=_positive, default=64, help="rollouts a trainer step takes (admission bound)")
    s.add_argument("--staleness-policy", choices=("drop", "wait"), default="drop")
    s.add_argument("--filter-zero-variance", action="store_true", help="evict groups whose rewards are all equal")
    s.add_argument("--lease-timeout", type=float, default=300.0, help="seconds before an unacknowledged lease returns")
    s.add_argument("--max-buffered", type=_positive, default=100_000, help="most rollouts held at once")
    s.add_argument("--seed", type=int, default=0, help="the seed of the prompts' epoch order")
    s.add_argument("--max-body-mb", type=_positive, default=64, help="largest request body (413 beyond)")
    s.set_defaults(func=cmd_serve)
    m = commands.add_parser("simulate", help="rollout workers and a trainer against a real server, on loopback")
    m.add_argument("--workers", type=_positive, default=4, help="concurrent rollout workers (default 4)")
    m.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    m.add_argument("--release", help="the release to serve (default: the config's release name)")
    m.add_argument("--url", help="a running server to use instead of starting one")
    m.add_argument("--group-size", type=_positive, default=8)
    m.add_argument("--max-staleness", type=int, default=2)
    m.add_argument("--batch-size", type=_positive, default=64, help="rollouts the trainer takes a step")
    m.add_argument("--tokens", type=_positive, default=1000, help="mean completion length in tokens")
    m.add_argument("--generate-ms", type=float, default=20.0, help="a worker's time to generate a group")
    m.set_defaults(func=cmd_simulate)
