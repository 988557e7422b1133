from pathlib import Path

import dagster as dg
import pytest
import yaml

from ptdata.config import Settings
from ptdata.runs import execute


@pytest.fixture
def make_home(tmp_path):
    """A fresh PTDATA_HOME with the given config; returns its Settings."""

    def _make(config: dict, name: str = "home") -> Settings:
        home = tmp_path / name
        home.mkdir()
        (home / "ptdata.yaml").write_text(yaml.safe_dump(config))
        return Settings(home=home, config_path=home / "ptdata.yaml", lake=str(home / "lake"), engine="local")

    return _make


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def run(settings: Settings, instance: dg.DagsterInstance, start: str, end: str | None = None, select: str = "*"):
    return execute(settings, select, start, end or start, instance)


def landing(settings: Settings, source: str, date: str) -> Path:
    d = settings.landing / source / date
    d.mkdir(parents=True, exist_ok=True)
    return d
