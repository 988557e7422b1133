"""The lake's folder publish (a release) recovers from a swap that was killed part-way, on the next publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptdata.core.lake import Lake


def _folder(path: Path, text: str) -> None:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(text)


@pytest.mark.parametrize("killed", ["before the swap", "between the moves", "before the old one was removed"])
def test_a_publish_finishes_what_a_killed_one_left(tmp_path, killed):
    lake = Lake(str(tmp_path / "lake"))
    final = tmp_path / "lake" / "releases" / "r"
    aside = final.with_name("r.replaced")
    if killed == "between the moves":  # the old release set aside, the new one not yet in place
        _folder(aside, "v1")
    elif killed == "before the old one was removed":  # the new release in place, the old one still aside
        _folder(final, "v2")
        _folder(aside, "v1")
    else:
        _folder(final, "v1")
    staged = tmp_path / "lake" / "_staging" / "run-release" / "r"
    _folder(staged, "v3")
    lake.publish_folder(str(staged), str(final))
    assert (final / "manifest.json").read_text() == "v3"
    assert not aside.exists() and not staged.exists()


def test_a_killed_first_move_leaves_the_old_release_readable_after_recovery(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    final = tmp_path / "lake" / "releases" / "r"
    _folder(final.with_name("r.replaced"), "v1")
    lake._recover_swap(str(final), str(final.with_name("r.replaced")))
    assert (final / "manifest.json").read_text() == "v1"
