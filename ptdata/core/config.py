"""The pipeline config file and the environment (README.md, Environment and config).

Typed with pydantic; every error names the key's path (`sources[2].kind`) and, for a choice, the allowed
values. `${VAR}` and `${VAR:-default}` are replaced from the environment before validation, so secrets stay
out of the file. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ptdata.core.regimes import allowed_names, regime_names
from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.pii import Allowlist
from ptdata.silver.quality import QualityRules

BUNDLED_DEMO_CONFIG = Path(__file__).parents[1] / "demo" / "ptdata.yaml"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names each bad key's path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SourceBase(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    regime: str  # a registered regime (ptdata/core/regimes.py)
    shape: str | dict[str, str] = "auto"  # auto, one of the regime's shapes, or a field map
    license: str = "unknown"
    # rlvr: the verifier used when a record names none (e.g. "math", "exact", "code_tests")
    verifier: str | None = None
    # PII that is not PII for this source, added to the defaults (RFC 2606 domains, documentation IPs):
    # {email_domains: [...], ip_networks: [...], literals: [...], fictional_phones: bool}
    pii_allowlist: dict[str, Any] = {}
    # silver's quality rules for this source, rule by rule over the regime's defaults, e.g.
    # {length: {max_chars: 8000}, refusal: {enabled: false}} (see ptdata/silver/quality/, a module a rule)
    quality: dict[str, Any] = {}
    # ISO 639-1 codes this source's records may be in (the `language` rule); null allows every language
    allowed_languages: list[Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]] | None = None

    def quality_rules(self) -> QualityRules:
        return QualityRules.for_regime(self.regime, self.quality, self.allowed_languages)

    @field_validator("regime")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in regime_names():
            raise ValueError(f"Input should be {allowed_names()}")
        return v

    @field_validator("pii_allowlist")
    @classmethod
    def _valid_allowlist(cls, v: dict[str, Any]) -> dict[str, Any]:
        Allowlist.from_config(v, prefix="pii_allowlist")  # raises ValueError naming the bad entry
        return v

    @model_validator(mode="after")
    def _shape_fits_regime(self) -> _SourceBase:
        shapes = regime_spec(self.regime).shapes
        if isinstance(self.shape, str) and self.shape != "auto" and self.shape not in shapes:
            allowed = ["auto", *shapes, "a field map"]
            raise ValueError(f"shape {self.shape!r} does not fit regime {self.regime!r}; use one of {allowed}")
        try:
            self.quality_rules()
        except ValidationError as e:
            first = e.errors()[0]
            msg = "unknown rule or key" if first["type"] == "extra_forbidden" else first["msg"]
            raise ValueError(f"quality.{_loc(first['loc'])}: {msg}") from None
        return self


class FilesSource(_SourceBase):
    kind: Literal["files"]
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "txt", "html"] = "auto"


class Pagination(_Strict):
    type: Literal["none", "cursor", "page"] = "none"
    # cursor: the request parameter that carries the cursor and the dotted path of the next cursor in a reply
    cursor_param: str = "cursor"
    cursor_path: str = "next_cursor"
    # page: the page-number parameter and the first page; paging stops at an empty page
    page_param: str = "page"
    first_page: int = 1
    max_pages: Annotated[int, Field(ge=1)] = 100_000


class HttpSource(_SourceBase):
    kind: Literal["http"]
    url: str
    params: dict[str, str | int | float | bool] = {}
    headers: dict[str, str] = {}
    records_path: str = "data"
    pagination: Pagination = Pagination()
    timeout: Annotated[float, Field(gt=0)] = 30.0
    max_retries: Annotated[int, Field(ge=0)] = 5
    backoff_base: Annotated[float, Field(ge=0)] = 0.5
    backoff_max: Annotated[float, Field(ge=0)] = 60.0


class WebSource(_SourceBase):
    kind: Literal["web"]
    urls: list[str] = []
    # a file of URLs, one a line; "{date}" is replaced by the partition date
    url_file: str | None = None
    rate_limit: Annotated[float, Field(gt=0)] = 1.0  # requests per second per host
    timeout: Annotated[float, Field(gt=0)] = 20.0
    max_bytes: Annotated[int, Field(gt=0)] = 5_000_000
    user_agent: str = "ptdata/0.1 (+https://github.com/ptdata/ptdata)"
    respect_robots: bool = True

    @model_validator(mode="after")
    def _has_urls(self) -> WebSource:
        if not self.urls and not self.url_file:
            raise ValueError("a web source needs `urls` or `url_file`")
        return self


class SqlSource(_SourceBase):
    kind: Literal["sql"]
    uri: str
    query: str

    @field_validator("query")
    @classmethod
    def _windowed(cls, q: str) -> str:
        if ":start" not in q or ":end" not in q:
            raise ValueError("the query must bind the partition window as :start and :end")
        return q


class RolloutsSource(_SourceBase):
    """Rejection sampling: the lake's verified_rollouts of the day whose reward is at least `min_reward`, each its
    prompt and completion as a conversation (ptdata/sources/rollouts.py)."""

    kind: Literal["rollouts"]
    min_reward: float = 1.0
    statuses: list[Literal["completed", "truncated", "aborted", "failed"]] = ["completed"]

    @model_validator(mode="after")
    def _conversations(self) -> RolloutsSource:
        if "messages" not in regime_spec(self.regime).column_names:
            raise ValueError(f"a rollouts source makes conversations: regime {self.regime!r} has no messages")
        return self


SourceConfig = Annotated[FilesSource | HttpSource | WebSource | SqlSource | RolloutsSource, Field(discriminator="kind")]


class EvalSet(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")]
    path: str
    fields: list[str] = ["prompt"]


class DedupConfig(_Strict):
    ngram: Annotated[int, Field(ge=1, le=64)] = 5
    num_perm: Annotated[int, Field(ge=16, le=1024)] = 128
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.8
    # the columns each regime is deduplicated on, when not the regime's dedup_fields (ptdata/core/regimes.py)
    fields: dict[str, list[str]] = {}

    @field_validator("fields")
    @classmethod
    def _regimes(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in v:
            if name not in regime_names():
                raise ValueError(f"{name!r}: a key of dedup.fields should be {allowed_names()}")
        return v


class DecontamConfig(_Strict):
    ngram: Annotated[int, Field(ge=1, le=64)] = 13


class QualityConfig(_Strict):
    min_pass_rate: Annotated[float, Field(ge=0, le=1)] = 0.8


class TokenizerConfig(_Strict):
    path: str | None = None  # a tokenizer.json or an HF model folder; null: ptdata trains its own byte-level BPE
    chat_template: Literal["chatml", "llama3", "hf"] = "chatml"  # hf: the model folder's own Jinja template
    loss_on: Literal["all_assistant", "last_assistant"] = "all_assistant"
    vocab_size: Annotated[int, Field(ge=512, le=262_144)] = 8192  # of the tokenizer ptdata trains


class PackingConfig(_Strict):
    seq_len: Annotated[int, Field(ge=16)] = 4096
    # a record longer than seq_len: dropped (gold_rejections, too_long), or cut to seq_len keeping what it trains
    # (a conversation loses its oldest context, a document its end); a cut record stays in its row, named in the
    # row's `truncated` column (ARCHITECTURE.md, the lake: a silver record is in a row or in gold_rejections, not both)
    overlong: Literal["drop", "truncate"] = "drop"
    # real tokens / capacity over a partition's rows, its least filled row left out: below this, not published
    min_efficiency: Annotated[float, Field(ge=0, le=1)] = 0.98
    # rlvr: prompts longer than this (in tokens, template included) are left out of gold_rlvr
    max_prompt_tokens: Annotated[int, Field(ge=1)] = 2048


class ReleaseConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")] = "latest"  # the release asset's default name
    shard_tokens: Annotated[int, Field(ge=1)] = 100_000_000  # tokens per Parquet shard, at most


class AutomationConfig(_Strict):
    # when the daily schedule materializes the previous day, bronze to gold (cron, UTC)
    daily_cron: str = "0 2 * * *"
    # the landing sensor starts a date's run once its newest file is this old, so a copy in progress is not read
    landing_settle_seconds: Annotated[int, Field(ge=0)] = 60

    # a source that cannot be reached (network errors, 429 or 5xx once its own retries are spent) fails the bronze
    # step instead of publishing a partial partition; Dagster retries the step this many times, waiting
    # source_retry_delay_seconds, doubled each time, with +/-50% jitter
    source_retries: Annotated[int, Field(ge=0, le=20)] = 3
    source_retry_delay_seconds: Annotated[float, Field(ge=0)] = 60.0
    # a step that finds a partition it writes held by another run waits this long for it, then fails naming the
    # holder: two runs of one partition (a schedule tick and a manual backfill) then both complete, one after the
    # other, instead of both failing on each other's locks; 0 refuses at once
    partition_wait_seconds: Annotated[float, Field(ge=0)] = 900.0

    @field_validator("daily_cron")
    @classmethod
    def _valid_cron(cls, v: str) -> str:
        # five fields: Dagster's schedules take minute resolution only, and croniter also accepts a seconds field
        if len(v.split()) != 5 or not croniter.is_valid(v):
            raise ValueError(f"{v!r} is not a cron expression (five fields, e.g. '0 2 * * *')")
        return v


class MonitoringConfig(_Strict):
    # freshness of the bronze assets: WARN when not updated for warn_hours, FAIL after fail_hours (the daily
    # schedule runs once a day, so a missed day shows by the next morning)
    freshness_warn_hours: Annotated[float, Field(gt=0)] = 26.0
    freshness_fail_hours: Annotated[float, Field(gt=0)] = 50.0
    # drift checks (WARN) compare a partition's statistics with those of the trailing drift_window_days partitions
    drift_window_days: Annotated[int, Field(ge=2, le=90)] = 7
    drift_min_history: Annotated[int, Field(ge=2)] = 3  # fewer earlier partitions than this: no verdict
    # a statistic drifts when it is further from the window's median than drift_sigmas robust deviations
    # (1.4826 x MAD) and than drift_min_relative of the median: quiet windows do not flag every small change
    drift_sigmas: Annotated[float, Field(gt=0)] = 4.0
    drift_min_relative: Annotated[float, Field(ge=0)] = 0.25
    # the language mix drifts when its total variation distance from the window's pooled mix is above this
    lang_mix_max_shift: Annotated[float, Field(gt=0, le=1)] = 0.15

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringConfig:
        if self.freshness_fail_hours < self.freshness_warn_hours:
            raise ValueError("freshness_fail_hours must be at least freshness_warn_hours")
        return self


class CostConfig(_Strict):
    # what one core-hour costs, for the $ figures in metadata, the pipeline_cost mart and `ptdata size`
    usd_per_core_hour: Annotated[float, Field(ge=0)] = 0.05


class BronzeConfig(_Strict):
    # a partition whose quarantined share is above this gets a WARN check; it is still published
    max_quarantine_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    # a record (a line, a row, a document) larger than this is quarantined as too_large
    max_record_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    # rows per Arrow batch written; bounds memory, not the output
    batch_rows: Annotated[int, Field(ge=16)] = 4096


class RlConfig(_Strict):
    # the dataplane's folder (`ptdata dataplane serve --dir`), whose closed segments the rollouts asset reads;
    # relative to the config's folder, default $PTDATA_HOME/dataplane
    dataplane_dir: str | None = None
    # a prompt whose pass rate is 0 or 1 over this many days of verified rollouts, with at least
    # `curriculum_min_samples` of them, is reported for curriculum filtering
    curriculum_window_days: Annotated[int, Field(ge=1)] = 7
    curriculum_min_samples: Annotated[int, Field(ge=1)] = 8


class PipelineConfig(_Strict):
    start_date: dt.date
    sources: list[SourceConfig] = []
    eval_sets: list[EvalSet] = []
    dedup: DedupConfig = DedupConfig()
    decontam: DecontamConfig = DecontamConfig()
    quality: QualityConfig = QualityConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    packing: PackingConfig = PackingConfig()
    bronze: BronzeConfig = BronzeConfig()
    release: ReleaseConfig = ReleaseConfig()
    automation: AutomationConfig = AutomationConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    cost: CostConfig = CostConfig()
    rl: RlConfig = RlConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> PipelineConfig:
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"source name {s.name!r} is used twice")
            seen.add(s.name)
        return self

    def sources_of(self, regime: str) -> list[SourceConfig]:
        return [s for s in self.sources if s.regime == regime]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with the file it came from (relative paths are resolved against its folder)."""

    pipeline: PipelineConfig
    path: Path

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else (self.folder / q).resolve()


def stable_hash(obj: Any) -> str:
    """A short, order-independent hash of config models or plain data, for code versions."""

    def plain(o: Any) -> Any:
        return o.model_dump(mode="json") if isinstance(o, BaseModel) else o

    return hashlib.sha256(orjson.dumps(obj, default=plain, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def _interpolate(node: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", env) for i, v in enumerate(node)]
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            hint = f"write ${{{name}:-default}} for a default"
            raise ConfigError(f"{path}: environment variable {name} is not set ({hint})")

        return _ENV_REF.sub(sub, node)
    return node


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("files", "http", "web", "sql") and out.endswith("]"):
            continue  # the discriminator's branch name is not a key of the file
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "union_tag_invalid":
            msg = f"must be one of {e['ctx']['expected_tags']}"
        elif e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        lines.append(f"{_loc(e['loc'])}: {msg}")
    return "\n".join(lines)


def _check_paths(cfg: LoadedConfig) -> list[str]:
    problems = []
    for i, ev in enumerate(cfg.pipeline.eval_sets):
        if not cfg.resolve(ev.path).is_file():
            problems.append(f"eval_sets[{i}].path: file not found: {cfg.resolve(ev.path)}")
    tok = cfg.pipeline.tokenizer.path
    if tok and not cfg.resolve(tok).exists():
        problems.append(f"tokenizer.path: not found: {cfg.resolve(tok)}")
    for i, s in enumerate(cfg.pipeline.sources):
        if isinstance(s, WebSource) and s.url_file and "{date}" not in s.url_file:
            if not cfg.resolve(s.url_file).is_file():
                problems.append(f"sources[{i}].url_file: file not found: {cfg.resolve(s.url_file)}")
    return problems


def parse_config(data: Any, path: Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Validate an already-parsed YAML document; `path` is where it came from, `env` fills ${VAR}."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping, got {type(data).__name__}")
    data = _interpolate(data, "", os.environ if env is None else env)
    try:
        pipeline = PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{path}:\n{_format_errors(e)}") from None
    cfg = LoadedConfig(pipeline=pipeline, path=path.resolve())
    problems = _check_paths(cfg)
    if problems:
        raise ConfigError(f"{path}:\n" + "\n".join(problems))
    return cfg


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse_config(data, p, env)


@dataclass(frozen=True)
class Settings:
    """The environment (PTDATA_HOME, PTDATA_CONFIG, PTDATA_LAKE, PTDATA_ENGINE), resolved once."""

    home: Path
    config_path: Path
    lake: str
    engine: str

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster")

    def env(self) -> dict[str, str]:
        """The environment config files are interpolated with: PTDATA_HOME is always set."""
        return {**os.environ, "PTDATA_HOME": str(self.home), "PTDATA_LAKE": self.lake}

    def load_config(self) -> LoadedConfig:
        return load_config(self.config_path, self.env())

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("PTDATA_HOME") or "./.ptdata").expanduser().resolve()
        config = env.get("PTDATA_CONFIG")
        if config:
            config_path = Path(config).expanduser().resolve()
        elif (home / "ptdata.yaml").is_file():
            config_path = home / "ptdata.yaml"
        else:
            config_path = BUNDLED_DEMO_CONFIG
        lake = env.get("PTDATA_LAKE") or str(home / "lake")
        engine = env.get("PTDATA_ENGINE") or "local"
        if engine != "local":
            # the Ray engine is planned but not in this version: say so rather than ignore it
            raise ConfigError(f"PTDATA_ENGINE: this version runs only 'local', got {engine!r}")
        return cls(home=home, config_path=config_path, lake=lake, engine=engine)
