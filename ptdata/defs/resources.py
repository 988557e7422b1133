"""The one resource the assets use: where ptdata's home, config and lake are. Tests swap it for a temporary one."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ptdata.core.config import LoadedConfig, Settings
from ptdata.core.lake import Lake


class PtdataResource(dg.ConfigurableResource):
    home: str
    config_path: str
    lake_root: str

    @classmethod
    def from_settings(cls, settings: Settings) -> PtdataResource:
        return cls(home=str(settings.home), config_path=str(settings.config_path), lake_root=settings.lake)

    @property
    def settings(self) -> Settings:
        return Settings(home=Path(self.home), config_path=Path(self.config_path), lake=self.lake_root, engine="local")

    @property
    def landing(self) -> Path:
        return self.settings.landing

    def load_config(self) -> LoadedConfig:
        return self.settings.load_config()

    def lake(self) -> Lake:
        return Lake(self.lake_root)
