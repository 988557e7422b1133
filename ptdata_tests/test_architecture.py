"""The shape of the code, held (ruff's TID251 keeps Dagster in ptdata/defs): the map in ARCHITECTURE.md lists every
folder, no module outgrows 500 lines, the demo generator stays small, regime facts come from the registry, and code comments
cite only documents the repository has."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / p for p in out.splitlines() if (REPO / p).exists()]


def _modules() -> list[Path]:
    return [p for p in _tracked() if p.suffix == ".py" and p.relative_to(REPO).parts[0] == "ptdata"]


def test_architecture_md_lists_every_folder():
    listed = set(re.findall(r"^\| `([^`]+)/` \|", (REPO / "ARCHITECTURE.md").read_text(), re.MULTILINE))
    folders = {p.parent.relative_to(REPO).as_posix() for p in _tracked()} - {"."}
    assert folders <= listed, f"folders missing from ARCHITECTURE.md's table: {sorted(folders - listed)}"
    assert listed <= folders, f"ARCHITECTURE.md lists folders that do not exist: {sorted(listed - folders)}"


def test_no_module_over_500_lines_and_a_small_demo_generator():
    sizes = {p.relative_to(REPO).as_posix(): len(p.read_text().splitlines()) for p in _modules()}
    assert not {p: n for p, n in sizes.items() if n > 500}
    assert sum(n for p, n in sizes.items() if p.startswith("ptdata/demo/")) <= 2000


def test_regime_facts_come_from_the_registry():
    comparisons = [
        f"{p.relative_to(REPO)}: {line.strip()}"
        for p in _modules()
        for line in p.read_text().splitlines()
        if re.search(r"regime\s*(==|!=)", line)
    ]
    assert len(comparisons) <= 8, comparisons


def test_code_cites_only_documents_of_the_repository():
    cites = [
        f"{p.relative_to(REPO)}:{i}"
        for p in _modules()
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"CONTRACT\.md|DESIGN\.md|FIELD_NOTES|\.\./shared", line)
    ]
    assert not cites, cites
