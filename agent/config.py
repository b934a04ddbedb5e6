"""Agent configuration: a TOML file, then environment, then command-line flags (highest wins).

Input: an optional TOML file (``--config``, or ``/etc/dcmon/agent.toml`` when it exists),
``DCMON_AGENT_*`` environment variables (nested keys with ``__``, e.g.
``DCMON_AGENT_GPU__BACKEND=none``) and flag overrides. Output: a validated, immutable
``AgentSettings``. Any problem is a ``ConfigError`` whose message names the key and the reason.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent.wire.schema import LABEL_NAME_RE, RESERVED_LABELS

DEFAULT_CONFIG_FILE = Path("/etc/dcmon/agent.toml")
DEFAULT_SERVER_URL = "http://127.0.0.1:8470"

_config_file: ContextVar[Path | None] = ContextVar("_config_file", default=None)


class ConfigError(ValueError):
    """The configuration is invalid; the message is meant for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuSettings(_Section):
    """Where GPU readings come from."""

    backend: Literal["auto", "nvml", "simulated", "none"] = Field(
        default="auto",
        description="auto/nvml: the NVIDIA driver through NVML (auto stays quiet when absent); "
        "simulated: synthetic GPUs for demos and benchmarks; none: no GPU collection.",
    )
    simulated_count: Annotated[int, Field(ge=1, le=64)] = 8
    simulated_latency: bool = Field(
        default=False,
        description="Make each simulated call take the median cost measured on a real H100 "
        "(benchmarks).",
    )
    simulated_seed: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="Varies the simulated GPUs' identities and workload; give each simulated "
        "node on one server its own seed.",
    )
    simulated_faults: Literal["none", "demo"] = Field(
        default="none",
        description="Scripted trouble on the simulated GPUs: 'demo' is the timeline of "
        "'dcmon demo --scenario faults' (an XID, an overheating GPU, a silent node).",
    )
    simulated_jobs: Literal["none", "demo"] = Field(
        default="none",
        description="Scripted jobs on the simulated GPUs: 'demo' holds GPUs 0-1 with an idle "
        "job and GPUs 2-3 with a working one, both named simulated-... (only with backend = "
        "'simulated').",
    )
    simulated_faults_start: float | None = Field(
        default=None,
        description="Unix time the fault timeline starts at (default: when the agent starts).",
    )
    simulated_fabric_ports: Annotated[int, Field(ge=0, le=64)] | None = Field(
        default=None,
        description="InfiniBand ports of the simulated fabric shown beside simulated GPUs "
        "(node_exporter's node_infiniband_* series, marked '(simulated)' in the firmware "
        "version of node_infiniband_info); it stands in for the node's own infiniband "
        "collector. Default: 4 with backend = 'simulated', 0 otherwise.",
    )
    init_retry_seconds: Annotated[float, Field(gt=0)] = 300.0
    call_deadline_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        default=10.0,
        description="A GPU whose driver calls have not returned after this long is reported "
        "unresponsive (dcmon_gpu_driver_unresponsive=1) and not called again until they return.",
    )
    tick_budget_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        default=0.5,
        description="The longest a tick waits for the GPUs before sending without the slow ones.",
    )
    fatal_xid_fence_seconds: Annotated[float, Field(ge=0)] = Field(
        default=600.0,
        description="After a fatal XID (79, 119, 120, ...) no driver calls are made on that GPU "
        "for this long; it is then probed again.",
    )

    @model_validator(mode="after")
    def _scripted_jobs_need_simulated_gpus(self) -> GpuSettings:
        if self.simulated_jobs != "none" and self.backend != "simulated":
            raise ValueError(
                "simulated_jobs needs backend = 'simulated' (scripted jobs run only "
                "on simulated GPUs)"
            )
        if self.simulated_fabric_ports and self.backend != "simulated":
            raise ValueError(
                "simulated_fabric_ports needs backend = 'simulated' (a simulated fabric "
                "belongs to a simulated node)"
            )
        return self

    @property
    def fabric_ports(self) -> int:
        """Returns: the simulated fabric's port count (0: none, the node's own is read)."""
        if self.backend != "simulated":
            return 0
        return 4 if self.simulated_fabric_ports is None else self.simulated_fabric_ports


class EventSettings(_Section):
    """Where GPU health events (XIDs) come from."""

    nvml: bool = Field(default=True, description="Wait for NVML's critical-error events.")
    kmsg_path: Path | None = Field(
        default=Path("/dev/kmsg"),
        description="The kernel log, for the XIDs NVML does not report (79, 119, 120). "
        "Unset to skip it.",
    )


class JobSettings(_Section):
    """How GPU processes are attributed to jobs."""

    mapping_dir: Path | None = Field(
        default=None,
        description="A directory with one file per GPU index (or GPU.MIG) listing the job ids "
        "running there, as written by scheduler prolog/epilog scripts (dcgm-exporter's HPC "
        "job-mapping layout).",
    )


class HostSettings(_Section):
    """Where the host's kernel interfaces are (a containerised agent mounts them elsewhere)."""

    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    rootfs: Path = Path("/")
    mount_points_exclude: str | None = None
    fs_types_exclude: str | None = None
    disk_devices_exclude: str | None = None
    network_devices_exclude: str | None = None
    statvfs_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    # node_exporter's --collector.textfile.directory: *.prom files the node's own scripts write
    textfile_directory: Path | None = None

    @field_validator(
        "mount_points_exclude",
        "fs_types_exclude",
        "disk_devices_exclude",
        "network_devices_exclude",
    )
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class IpmiPowerSettings(_Section):
    """Node power from the BMC (``ipmi_power``); it runs only where ipmitool and a BMC exist."""

    dev_root: Path = Field(default=Path("/dev"), description="Where the BMC device node is.")
    period_seconds: Annotated[float, Field(ge=5, le=3600)] = 30.0
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    failures_before_backoff: Annotated[int, Field(ge=1, le=100)] = 3
    backoff_seconds: Annotated[float, Field(ge=60, le=86400)] = 3600.0

    @model_validator(mode="after")
    def _consistent(self) -> IpmiPowerSettings:
        if self.timeout_seconds > self.period_seconds:
            raise ValueError("timeout_seconds must not exceed period_seconds")
        if self.backoff_seconds < self.period_seconds:
            raise ValueError("backoff_seconds must be at least period_seconds")
        return self


class CollectorSettings(_Section):
    """Which collectors run, by name (``dcmon agent --list-collectors`` shows them)."""

    disabled: list[str] = Field(default_factory=list)
    enabled: list[str] = Field(default_factory=list, description="Turn on default-off collectors.")


class SpoolSettings(_Section):
    """The on-disk queue every batch is written to before it is sent."""

    dir: Path | None = Field(default=None, description="Default: the spool folder in state_dir.")
    max_bytes: Annotated[int, Field(ge=1 << 20)] = Field(
        default=512 << 20, description="Disk budget; past it the oldest batches are dropped."
    )
    max_age_seconds: Annotated[float, Field(ge=60)] = Field(
        default=86400.0, description="Batches older than this are dropped (counted) unsent."
    )
    memory_max_bytes: Annotated[int, Field(ge=1 << 20)] = Field(
        default=64 << 20,
        description="Budget of the in-memory queue used while the disk cannot be written "
        "(full, read-only, I/O errors).",
    )
    fsync: bool = Field(
        default=True, description="fsync each batch before it counts as spooled (crash-safe)."
    )


class TransportSettings(_Section):
    """How batches reach the server."""

    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    backoff_initial_seconds: Annotated[float, Field(gt=0)] = 1.0
    backoff_max_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Longest wait between attempts while the server cannot be reached (doubling "
        "from backoff_initial_seconds, jittered). Short, so a fleet is back within seconds of a "
        "restart; a busy server paces agents with Retry-After, which replaces the backoff.",
    )
    replay_batches_per_request: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=32,
        description="When a backlog is waiting, up to this many batches travel in one request.",
    )
    replay_requests_per_second: Annotated[float, Field(gt=0)] = Field(
        default=2.0, description="Pace of backlog requests, so a recovering server is not flooded."
    )
    poison_attempts: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=10,
        description="Failed attempts the server answered about the oldest batch before the next "
        "one is tried right after it; if that one goes through, the oldest is set aside in "
        "spool/rejected/ (a batch the server fails on every time must not hold the queue).",
    )
    compact_batches: bool = Field(
        default=True,
        description="Once the server has acknowledged a batch with a layout key, send later "
        "batches with the same series as their values alone (labels travel once per change of "
        "the node's series); off: every batch goes in full and no layout key is asked for.",
    )
    ca_file: Path | None = Field(
        default=None, description="PEM CA bundle to verify the server (default: system store)."
    )
    client_cert_file: Path | None = Field(
        default=None, description="PEM client certificate, for servers that require mTLS."
    )
    client_key_file: Path | None = Field(default=None, description="Key of client_cert_file.")

    @model_validator(mode="after")
    def _client_pair(self) -> TransportSettings:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together")
        return self


class BenchSettings(_Section):
    """Benchmark runs the server asks for (``agent.bench.remote``)."""

    remote: bool = Field(
        default=True,
        description="Run the benchmark requests an admin makes on the server (they arrive in "
        "the answer to a push); off: every request is refused by this node.",
    )
    backend: Literal["auto", "numpy", "torch"] = Field(
        default="auto",
        description="auto: PyTorch on CUDA when available, else numpy on the CPU.",
    )
    busy_retry_seconds: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=30.0,
        description="While the GPUs run compute processes (and the request is not forced), "
        "look again this often until the request expires.",
    )


class AgentSettings(BaseSettings):
    """Everything the agent reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="DCMON_AGENT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$")] = (
        DEFAULT_SERVER_URL
    )
    token: SecretStr | None = Field(
        default=None, description="Ingest token; prefer token_file so it stays out of `ps`."
    )
    token_file: Path | None = Field(
        default=None,
        description="File holding this node's token. Default: the token enrollment wrote to "
        "state_dir (node-token).",
    )
    bootstrap_token: SecretStr | None = Field(
        default=None, description="Bootstrap token; prefer bootstrap_token_file."
    )
    bootstrap_token_file: Path | None = Field(
        default=None,
        description="File holding a bootstrap token: with no node token yet, the agent enrolls "
        "and keeps the per-node token it gets in state_dir.",
    )
    interval_seconds: Annotated[float, Field(ge=1, le=3600)] = 10.0
    state_dir: Path = Path("/var/lib/dcmon-agent")
    node_name: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = None
    hostname: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = Field(
        default=None,
        description="The host name the batches carry (the GPU series' Hostname label; default: "
        "this machine's); set it where the agent's host name is not the node's, as in a "
        "container, or for a simulated node.",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    inventory_refresh_seconds: Annotated[float, Field(ge=60)] = 3600.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    gpu: GpuSettings = Field(default_factory=GpuSettings)
    host: HostSettings = Field(default_factory=HostSettings)
    collectors: CollectorSettings = Field(default_factory=CollectorSettings)
    transport: TransportSettings = Field(default_factory=TransportSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    ipmi_power: IpmiPowerSettings = Field(default_factory=IpmiPowerSettings)
    bench: BenchSettings = Field(default_factory=BenchSettings)

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > 16:
            raise ValueError("at most 16 node labels")
        for name, value in labels.items():
            if not LABEL_NAME_RE.match(name) or name.startswith("__"):
                raise ValueError(f"{name!r} is not a valid label name")
            if name in RESERVED_LABELS:
                raise ValueError(f"label {name!r} is set by the server")
            if len(value) > 1024:
                raise ValueError(f"value of label {name!r} is longer than 1024 characters")
        return labels

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

    def read_token(self) -> str | None:
        """Returns: the ingest token from ``token`` or ``token_file``, if any.

        Raises:
            ConfigError: ``token_file`` is set but cannot be read or is empty.
        """
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is None:
            return None
        return read_secret_file(self.token_file, "token_file")


def read_secret_file(path: Path, key: str) -> str:
    """Returns: the token held in ``path`` (the file named by setting ``key``), stripped.

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key} {path}: {exc.strerror or exc}") from None
    if not secret:
        raise ConfigError(f"{key} {path} is empty")
    return secret


def load_settings(config_file: Path | None, overrides: Mapping[str, Any]) -> AgentSettings:
    """Build the settings from file, environment and flag overrides.

    Args:
        config_file: an explicit file (must exist), or None to use the default path if present.
        overrides: values from command-line flags; nested keys as dicts.

    Raises:
        ConfigError: the file is missing or unreadable, or a value is invalid.
    """
    if config_file is None:
        config_file = DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
    elif not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    if config_file is not None:
        _check_toml(config_file)
    with _reading(config_file):
        try:
            return AgentSettings(**overrides)
        except ValidationError as exc:
            raise ConfigError(describe_errors(exc, config_file)) from None


def describe_errors(exc: ValidationError, config_file: Path | None) -> str:
    """Returns: one line per invalid key, naming the key as written in the TOML file."""
    where = f" (config file {config_file})" if config_file else ""
    lines = [f"invalid agent configuration{where}:"]
    for error in exc.errors(include_url=False):
        key = ".".join(str(part) for part in error["loc"]) or "(root)"
        lines.append(f"  {key}: {error['msg']}")
    return "\n".join(lines)


def _check_toml(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


@contextmanager
def _reading(config_file: Path | None) -> Iterator[None]:
    token = _config_file.set(config_file)
    try:
        yield
    finally:
        _config_file.reset(token)
