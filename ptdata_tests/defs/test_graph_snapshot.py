"""A snapshot of the asset graph the bundled demo config builds: every asset's group, dependencies, checks (and
whether they block), partitions, backfill policy and code version. A change to the graph is then always a
deliberate diff of `graph_snapshot.json`.

When a change is meant to change the graph, rewrite the file and commit it with the change:
    PTDATA_UPDATE_SNAPSHOTS=1 pytest ptdata_tests/defs/test_graph_snapshot.py
"""

import json
import os
from pathlib import Path

import dagster as dg

from ptdata.core.config import BUNDLED_DEMO_CONFIG, Settings
from ptdata.defs.location import build_definitions

SNAPSHOT = Path(__file__).with_name("graph_snapshot.json")
# the demo config names its sql source's database under PTDATA_HOME, and that URI is part of bronze_rlvr's code
# version: a fixed home makes the snapshot the same on every machine (nothing is written there)
HOME = Path("/ptdata-snapshot-home")


def _partitions(p: dg.PartitionsDefinition | None) -> str | None:
    if p is None:
        return None
    assert isinstance(p, dg.DailyPartitionsDefinition)
    return f"daily from {p.start.date().isoformat()}"


def graph(defs: dg.Definitions) -> dict[str, dict]:
    asset_graph = defs.resolve_asset_graph()
    checks: dict[str, dict[str, bool]] = {}
    for assets_def in defs.assets:
        for spec in assets_def.check_specs:
            checks.setdefault(spec.asset_key.to_user_string(), {})[spec.name] = spec.blocking
    out = {}
    for key in sorted(asset_graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = asset_graph.get(key)
        out[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": dict(sorted(checks.get(key.to_user_string(), {}).items())),
            "partitions": _partitions(node.partitions_def),
            "backfill_policy": str(node.backfill_policy.policy_type) if node.backfill_policy else None,
            "code_version": node.code_version,
        }
    return out


def test_the_asset_graph_matches_its_snapshot(monkeypatch):
    monkeypatch.setenv("PTDATA_HOME", str(HOME))
    settings = Settings(home=HOME, config_path=BUNDLED_DEMO_CONFIG, lake=str(HOME / "lake"), engine="local")
    found = graph(build_definitions(settings))
    if os.environ.get("PTDATA_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    snapshot = json.loads(SNAPSHOT.read_text())
    changed = {
        k: (snapshot.get(k), found.get(k)) for k in snapshot.keys() | found.keys() if snapshot.get(k) != found.get(k)
    }
    assert not changed, (
        f"the asset graph changed for {sorted(changed)}; first: {next(iter(sorted(changed.items())))}. If the change "
        f"is meant, update {SNAPSHOT.name} (see the module docstring) and commit it with the change."
    )
