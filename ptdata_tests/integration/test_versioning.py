"""Versions and staleness, as the Dagster UI computes them from a real instance. A config change changes the code
versions of exactly the assets that use that setting, so exactly those show stale; their downstream assets show
stale once they are re-materialized with different data (Dagster's rule: a new upstream data version), and not
when the data comes out the same."""

import dagster as dg
import yaml
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from ptdata.defs.location import build_definitions
from ptdata_tests.conftest import run
from ptdata_tests.integration.test_gold_assets import D, _config, write_landing


def _stale(settings, instance) -> set[str]:
    graph = build_definitions(settings).resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    stale = set()
    for key in graph.get_all_asset_keys():
        partition = D if graph.get(key).partitions_def is not None else None
        if resolver.get_status(key, partition) != StaleStatus.FRESH:
            stale.add(key.to_user_string())
    return stale


def test_a_dedup_threshold_change_makes_only_its_downstream_stale(make_home):
    settings = make_home(_config())
    write_landing(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        assert run(settings, instance, D).success
        assert _stale(settings, instance) == set()
        settings.config_path.write_text(yaml.safe_dump({**_config(), "dedup": {"threshold": 0.7}}))
        stale = _stale(settings, instance)
    assert stale == {"dedup_signatures", *(f"silver_{r}" for r in ("sft", "preference", "rlvr", "text"))}


def test_a_packing_change_makes_gold_stale_then_what_reads_gold(make_home):
    settings = make_home(_config())
    write_landing(settings)
    gold = {f"gold_{r}" for r in ("sft", "preference", "rlvr", "text")}
    with dg.DagsterInstance.ephemeral() as instance:
        assert run(settings, instance, D).success
        settings.config_path.write_text(yaml.safe_dump(_config(packing={"seq_len": 512, "min_efficiency": 0.0})))
        assert _stale(settings, instance) == gold
        # re-materialized, gold_sft and gold_text hold other rows: the daily assets that read gold go stale. (Dagster
        # does not track staleness from daily partitions into an unpartitioned asset such as the release or
        # license_mix; a release pins the data versions it was built from in its manifest instead.)
        assert run(settings, instance, D, select=" or ".join(f"key:{g}" for g in sorted(gold))).success
        stale = _stale(settings, instance)
    assert {"funnel_daily", "gold_rejections"} <= stale
    assert not stale & gold and not {s for s in stale if s.startswith(("bronze_", "silver_"))}
