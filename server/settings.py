"""Server configuration: a TOML file, then ``DCMON_SERVER_*`` environment, then flags.

Output: a validated, immutable ``ServerSettings``. Problems are ``SettingsError`` with one line
per key. Secrets are never stored in clear: ingest tokens are configured by their SHA-256.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from server.notify.config import NotifySettings
from server.storage.tiers import block_ms_of

DEFAULT_CONFIG_FILE = Path("/etc/dcmon/server.toml")
DEFAULT_PORT = 8470

_config_file: ContextVar[Path | None] = ContextVar("_server_config_file", default=None)

TokenHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class SettingsError(ValueError):
    """The configuration is invalid; the message is meant for the operator."""


class ServerSettings(BaseSettings):
    """Everything the server reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="DCMON_SERVER_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    listen_host: str = Field(default="127.0.0.1", description="Bind address; loopback by default.")
    listen_port: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_PORT
    data_dir: Path = Path("/var/lib/dcmon")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file dcmon.db in data_dir."
    )
    auto_migrate: bool = Field(default=True, description="Apply schema migrations at start-up.")
    ingest_token_sha256: list[TokenHash] = Field(
        default_factory=list,
        description="SHA-256 (hex) of each accepted ingest token; `dcmon token new` makes both.",
    )
    admin_key_sha256: list[TokenHash] = Field(
        default_factory=list,
        description="SHA-256 of admin API keys from the config file (more can be made with "
        "`dcmon token create --role admin`).",
    )
    read_token_sha256: list[TokenHash] = Field(
        default_factory=list, description="SHA-256 of read tokens from the config file."
    )
    bootstrap_token_sha256: list[TokenHash] = Field(
        default_factory=list,
        description="SHA-256 of bootstrap tokens from the config file: they may only enroll "
        "nodes, each enrollment yielding a per-node token.",
    )
    open_reads: bool = Field(
        default=False,
        description="Serve reads (API, /metrics, web page) without a token. Off by default; "
        "the demo turns it on for its loopback-only server.",
    )
    credential_cache_seconds: Annotated[float, Field(ge=0, le=300)] = Field(
        default=5.0,
        description="How long a token looked up in the database is trusted before it is looked "
        "up again: the longest a revocation takes to reach another server replica.",
    )
    session_seconds: Annotated[float, Field(gt=0)] = Field(
        default=12 * 3600.0,
        description="Lifetime of a web session (the signed cookie POST /login sets); the "
        "browser logs in again after it.",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate chain: serve HTTPS."
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle that client certificates must chain to (mTLS)."
    )
    tls_client_auth: Literal["none", "optional", "required"] = Field(
        default="none",
        description="Client certificates: none, optional (verified when sent) or required. "
        "optional/required need tls_client_ca_file.",
    )
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 << 20
    max_decompressed_bytes: Annotated[int, Field(ge=1024)] = 64 << 20
    max_future_seconds: Annotated[float, Field(ge=0)] = 600.0
    max_series_per_batch: Annotated[int, Field(ge=1)] = Field(
        default=20_000, description="Samples (series) in one batch, over all its families."
    )
    max_series_per_node: Annotated[int, Field(ge=1)] = Field(
        default=20_000,
        description="Active series one node may have (written within "
        "active_series_window_seconds); past it a batch is stored without the new series that "
        "do not fit, which its acknowledgement lists.",
    )
    active_series_window_seconds: Annotated[float, Field(ge=60)] = Field(
        default=3600.0,
        description="A series is active while written within this long; the series limit "
        "counts active series. At most raw_retention_seconds.",
    )
    max_inflight_ingest: Annotated[int, Field(ge=1)] = Field(
        default=32,
        description="Ingest requests processed at once; more wait in a queue "
        "(ingest_queue_seconds, ingest_queue_max), then get 429 with Retry-After, so a fleet "
        "replaying after an outage is paced instead of piling up.",
    )
    ingest_queue_seconds: Annotated[float, Field(ge=0, le=60)] = Field(
        default=1.0,
        description="How long an ingest request past max_inflight_ingest waits for a slot "
        "before 429 (0: refused at once). A request takes tens of milliseconds, so a burst of "
        "a fleet's pushes is served instead of sent away for seconds.",
    )
    ingest_queue_max: Annotated[int | None, Field(ge=0)] = Field(
        default=None,
        description="Ingest requests that may wait for a slot at once (their bodies are held "
        "in memory); past it, 429 at once. Default: four times max_inflight_ingest.",
    )
    ingest_retry_after_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        default=5.0,
        description="The Retry-After of 503 (jittered up to twice), and the most a 429's can "
        "be: a 429's is the time the queue ahead needs at the measured request time, at "
        "least 1 s.",
    )
    ingest_write_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        default=8.0,
        description="How long an ingest request waits for its write to commit before it answers "
        "503 with Retry-After (the database is slow or stuck); below the agent's HTTP timeout "
        "(10 s by default), so the agent hears the answer.",
    )
    max_batches_per_bulk: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=64, description="Batches in one bulk ingest request (agents replaying a backlog)."
    )
    stale_after_intervals: Annotated[float, Field(ge=1)] = 3.0
    stale_after_min_seconds: Annotated[float, Field(ge=1)] = 30.0
    node_forget_after_seconds: Annotated[float, Field(ge=60)] = 7 * 86400.0
    raw_retention_seconds: Annotated[float, Field(ge=3600)] = Field(
        default=14 * 86400.0, description="How long raw samples are kept (head and raw blocks)."
    )
    rollup_1m_retention_seconds: Annotated[float, Field(ge=3600)] = Field(
        default=30 * 86400.0, description="How long 1-minute rollups are kept."
    )
    rollup_1h_retention_seconds: Annotated[float, Field(ge=3600)] = Field(
        default=400 * 86400.0, description="How long 1-hour rollups are kept."
    )
    storage_block_seconds: Annotated[float, Field(ge=60)] = Field(
        default=3600.0,
        description="Span of one compressed block; whole minutes dividing a day (600, 3600...).",
    )
    compaction_grace_seconds: Annotated[float, Field(ge=0)] = Field(
        default=120.0, description="How long after its end a window stays open for late batches."
    )
    maintenance_interval_seconds: Annotated[float, Field(ge=0.1)] = Field(
        default=60.0, description="How often compaction and retention run in the background."
    )
    history_max_points: Annotated[int, Field(ge=10)] = 11_000
    history_max_series: Annotated[int, Field(ge=1)] = 500
    query_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=120.0,
        description="Longest a PromQL query may run (Prometheus' --query.timeout); a request's "
        "timeout parameter can only shorten it.",
    )
    query_max_samples: Annotated[int, Field(ge=1)] = Field(
        default=50_000_000,
        description="Most raw samples one PromQL query may load (Prometheus' "
        "--query.max-samples); past it the query fails with an execution error.",
    )
    rule_files: list[str] = Field(
        default_factory=list,
        description="Prometheus rule files the server evaluates, as paths or globs "
        "(a directory: its *.yaml and *.yml files), besides the shipped pack.",
    )
    rules_shipped: bool = Field(
        default=False,
        description="Evaluate the rule pack shipped with dcmon (alerts/*.yaml); off by "
        "default until a site turns it on (its output is stored like any series).",
    )
    self_series: bool = Field(
        default=True,
        description="Store the server's own health series (ingest, refusals, nodes, leader, "
        "notifications, clock skew) per replica, so dcmon's PromQL, rules and dashboards see "
        "them; off: they are only on /metrics.",
    )
    rule_evaluation_interval_seconds: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=60.0,
        description="Interval of rule groups that set none (Prometheus' evaluation_interval); "
        "also how often dcmon_node_up is recorded as a series.",
    )
    rule_query_offset_seconds: Annotated[float, Field(ge=0, le=3600)] | None = Field(
        default=None,
        description="How far behind the present rules evaluate (a group's query_offset "
        "wins); default: the largest push interval among live nodes, so pushed data is "
        "evaluated at its own time once it has arrived.",
    )
    rule_resend_delay_seconds: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=60.0,
        description="How often a firing alert is sent again (Prometheus' "
        "--rules.alert.resend-delay).",
    )
    rule_leader_check_seconds: Annotated[float, Field(ge=0.1, le=30)] = Field(
        default=5.0,
        description="How often a replica checks whether it leads rule evaluation; a new "
        "leader takes over within this much after the old one's database session ends.",
    )
    bench_order_refresh_seconds: Annotated[float, Field(ge=0.1, le=60)] = Field(
        default=2.0,
        description="How often each replica re-reads the open benchmark requests for its push "
        "answers: the longest a request made, cancelled or finished on another replica takes "
        "to reach this one's answers.",
    )
    bench_window_seconds: Annotated[float, Field(ge=3600)] = Field(
        default=30 * 86400.0,
        description="Benchmark results of the last this long make up the fleet judgement and "
        "the dcmon_bench_* series (a device not benchmarked since drops out of both).",
    )
    bench_retention_seconds: Annotated[float, Field(ge=86400)] = Field(
        default=400 * 86400.0,
        description="How long a benchmark request that ended is kept, with its run, devices and "
        "figures. Open requests stay, and so does each device's latest run (and its latest "
        "figure of each test) whatever its age: the fleet judgement and the dcmon_bench_* "
        "series read them.",
    )
    hints_interval_seconds: Annotated[float, Field(ge=10, le=86400)] = Field(
        default=300.0,
        description="How often the leader builds the cluster snapshot and runs the hint engine "
        "(one round); 5 minutes is well under how fast an operator acts on a hint.",
    )
    hints_idle_seconds: Annotated[float, Field(ge=60, le=7 * 86400)] = Field(
        default=1800.0,
        description="A job whose GPUs stayed idle (under 10 % utilization, its node's CPU "
        "under 20 %) this long may get a reclaim_idle hint, unless its history shows idle gaps "
        "that ended in work (PAI-DSW's idle culler uses 30 minutes). Also the window of the "
        "per-GPU means the engine reads.",
    )
    hints_node_cpu: bool = Field(
        default=True,
        description="Count a node's CPU busy share as its jobs' CPU use: a job whose node's CPU "
        "is over 20 % busy is not idle. Off where the node's CPU says nothing about its GPU "
        "jobs (the demo: its jobs are simulated, its CPU is whatever else the machine does).",
    )
    hints_max_moves_per_round: Annotated[int, Field(ge=0, le=100000)] = Field(
        default=20,
        description="At most this many job moves per round, across every hint (releases of "
        "idle jobs have their own cap of 50); an operator acts on a few moves at a time.",
    )
    hints_expire_rounds: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=3,
        description="An open hint (new or acknowledged) that this many rounds in a row do not "
        "produce again is expired: the cluster changed and the advice no longer holds.",
    )
    hints_ttl_seconds: Annotated[float, Field(ge=60)] = Field(
        default=3600.0,
        description="An open hint not produced for this long is expired even if no round ran "
        "(rounds failing, or the leader gone), so stale advice is never served as current.",
    )
    hints_dismiss_seconds: Annotated[float, Field(ge=0)] = Field(
        default=7 * 86400.0,
        description="A dismissed hint stays dismissed while the engine produces it again; once "
        "this long has passed since it was dismissed, the next round that produces it shows it "
        "as new again.",
    )
    hints_applied_seconds: Annotated[float, Field(ge=0)] = Field(
        default=3600.0,
        description="A hint marked applied stays applied while the engine still produces it "
        "(the moves take a while); produced again this long after it was applied, it is new "
        "again: the move did not happen or was undone.",
    )
    hints_retention_seconds: Annotated[float, Field(ge=3600)] = Field(
        default=30 * 86400.0,
        description="How long an ended hint (dismissed, applied, expired) that no round "
        "produces any more is kept. A dismissed hint still produced is kept, so it stays "
        "dismissed.",
    )
    external_url: str = Field(
        default="", description="The server's public URL: alerts' generator URL, $externalURL."
    )
    notify: NotifySettings = Field(
        default_factory=NotifySettings,
        description="Alertmanagers and direct receivers ([notify]).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    gc_tuned: bool = Field(
        default=True,
        description="Tune the server process's garbage collector for a large long-lived heap "
        "(startup's objects frozen, full collections rare; ``server/gc_policy.py``); off: "
        "Python's defaults.",
    )

    @field_validator("storage_block_seconds")
    @classmethod
    def _block_fits_a_day(cls, value: float) -> float:
        block_ms_of(value)
        return value

    @field_validator(
        "ingest_token_sha256",
        "admin_key_sha256",
        "read_token_sha256",
        "bootstrap_token_sha256",
        mode="before",
    )
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(",", " ").split() if part]
        if isinstance(value, list):
            return [item.lower() if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _window_within_retention(self) -> ServerSettings:
        if self.active_series_window_seconds > self.raw_retention_seconds:
            raise ValueError(
                "active_series_window_seconds must not exceed raw_retention_seconds (a series "
                "must be known active for as long as its last writes are kept)"
            )
        return self

    @model_validator(mode="after")
    def _tls_consistent(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_auth != "none":
            if self.tls_client_ca_file is None:
                raise ValueError(f"tls_client_auth={self.tls_client_auth} needs tls_client_ca_file")
            if self.tls_cert_file is None:
                raise ValueError("client certificates need TLS: set tls_cert_file and tls_key_file")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'dcmon.db'}"


def load_settings(config_file: Path | None, overrides: Mapping[str, Any]) -> ServerSettings:
    """Build settings from file, environment and flag overrides.

    Raises:
        SettingsError: the file is missing, unreadable or invalid, or a value is invalid.
    """
    if config_file is None:
        config_file = DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
    elif not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist")
    if config_file is not None:
        try:
            with config_file.open("rb") as handle:
                tomllib.load(handle)
        except OSError as exc:
            raise SettingsError(f"config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config_file} is not valid TOML: {exc}") from None
    with _reading(config_file):
        try:
            return ServerSettings(**overrides)
        except ValidationError as exc:
            where = f" (config file {config_file})" if config_file else ""
            lines = [f"invalid server configuration{where}:"]
            for error in exc.errors(include_url=False):
                key = ".".join(str(part) for part in error["loc"]) or "(root)"
                lines.append(f"  {key}: {error['msg']}")
            raise SettingsError("\n".join(lines)) from None


@contextmanager
def _reading(config_file: Path | None) -> Iterator[None]:
    token = _config_file.set(config_file)
    try:
        yield
    finally:
        _config_file.reset(token)
