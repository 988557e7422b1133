"""The one resource the assets use: where ptdata's home, config and lake are. Tests swap it for a temporary one."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from ptdata.core.config import ConfigError, LoadedConfig, Settings, stable_hash
from ptdata.core.executor import Executor, LocalExecutor, local_executor
from ptdata.core.lake import Lake

# what every worker imports as it starts: the modules of the stages that hand it tasks, and the language model
WORKER_PRELOAD = (
    "ptdata.bronze.stage",
    "ptdata.silver.signatures",
    "ptdata.silver.langid:load_model",
    "ptdata.silver.audits",
    "ptdata.gold.stage",
)


def run_executor() -> LocalExecutor:
    """The executor of a run's stages (PTDATA_WORKERS processes on this machine); a bad PTDATA_WORKERS is a
    ConfigError."""
    return local_executor(preload=WORKER_PRELOAD)


class PtdataResource(dg.ConfigurableResource):
    home: str
    config_path: str
    lake_root: str
    # the hash of the config the definitions were built from: their code versions come from it, so a run must read
    # the same one ("" when the resource was made without definitions, in a test)
    config_sha: str = ""
    _config: LoadedConfig | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings, cfg: LoadedConfig | None = None) -> PtdataResource:
        sha = stable_hash(cfg.pipeline) if cfg is not None else ""
        return cls(
            home=str(settings.home), config_path=str(settings.config_path), lake_root=settings.lake, config_sha=sha
        )

    @property
    def settings(self) -> Settings:
        return Settings(home=Path(self.home), config_path=Path(self.config_path), lake=self.lake_root, engine="local")

    @property
    def landing(self) -> Path:
        return self.settings.landing

    def config(self) -> LoadedConfig:
        """The config, parsed once per run; a config file edited since the code location was loaded is refused,
        because the assets' code versions were computed from the one it held then."""
        if self._config is None:
            cfg = self.settings.load_config()
            if self.config_sha and stable_hash(cfg.pipeline) != self.config_sha:
                raise ConfigError(
                    f"{self.config_path} changed since the code location was loaded: reload it (the UI's "
                    "Reload, or restart `dagster dev`) so that its code versions match the config"
                )
            self._config = cfg
        return self._config

    def lake(self) -> Lake:
        return Lake(self.lake_root)

    def executor(self) -> Executor:
        """Where the per-record work runs: PTDATA_WORKERS processes on this machine (results identical for any
        number, so it is not part of a code version)."""
        return run_executor()
