"""The demo lake's data versions, committed: a change of behaviour that changes any data file of the demo is a
deliberate diff of `demo_data_versions.json`, never a silent one.

When a change is meant to change the demo's data, rewrite the file and commit it with the change that explains it:
    PTDATA_UPDATE_GOLDEN=1 pytest ptdata_tests/integration/test_demo_golden.py
"""

import hashlib
import json
import os
from pathlib import Path

GOLDEN = Path(__file__).with_name("demo_data_versions.json")
# written with the run's wall-clock figures (stage_runs and the mart over it), or naming the home's path (the
# release manifest's config hash covers the sql source's URI, which holds PTDATA_HOME): not a function of the data
NOT_DETERMINISTIC = ("ops/stage_runs/", "marts/pipeline_cost/", "releases/demo/manifest.json")


def _data_versions(lake: Path) -> dict[str, str]:
    out = {}
    for path in sorted(lake.rglob("*")):
        rel = path.relative_to(lake).as_posix()
        if path.is_file() and not rel.startswith("_staging/") and not rel.startswith(NOT_DETERMINISTIC):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_the_demo_lake_is_byte_identical_to_its_committed_data_versions(demo_home):
    found = _data_versions(demo_home / "lake")
    if os.environ.get("PTDATA_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    changed = sorted(k for k in golden.keys() & found.keys() if golden[k] != found[k])
    missing, new = sorted(golden.keys() - found.keys()), sorted(found.keys() - golden.keys())
    assert not (changed or missing or new), (
        f"the demo lake changed: {len(changed)} files differ (first {changed[:5]}), {len(missing)} missing "
        f"({missing[:5]}), {len(new)} new ({new[:5]}). If the change is meant, update {GOLDEN.name} (see the "
        "module docstring) and say why in the commit."
    )
