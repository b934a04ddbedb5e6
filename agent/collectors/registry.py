"""The collector registry: which collectors exist, which run by default, and how to build them.

Like node_exporter's: every collector has a name and a default on/off; configuration turns
individual ones off (``collectors.disabled``) or default-off ones on (``collectors.enabled``).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass

from agent.collectors.base import Collector, HostPaths
from agent.collectors.gpu import GpuCollector, open_backend
from agent.collectors.gpu.faults import FaultPlan, demo_plan
from agent.collectors.gpu.simulated_jobs import SimulatedJob, plan
from agent.collectors.host import HOST_COLLECTORS, HostOptions, build_host_collectors
from agent.collectors.power import IpmiPowerCollector, IpmiPowerOptions
from agent.config import AgentSettings, ConfigError
from agent.events import EventsCollector, KmsgReader, NvmlEventSource, XidSource, labels_resolver
from agent.events.model import XidEvent
from agent.events.simulated_source import SimulatedXidSource
from agent.jobs import JobsCollector
from agent.jobs.simulated import SimulatedProcFiles, simulated_user_name

GPU_COLLECTOR = "gpu"
AGENT_COLLECTOR = "agent"
JOBS_COLLECTOR = "jobs"
EVENTS_COLLECTOR = "events"
IPMI_POWER_COLLECTOR = "ipmi_power"


@dataclass(frozen=True)
class BuiltCollectors:
    collectors: list[Collector]
    gpu: GpuCollector | None
    paths: HostPaths
    events: EventsCollector | None = None
    jobs: JobsCollector | None = None


def known_collectors() -> dict[str, bool]:
    """Returns: collector name -> enabled by default."""
    known = {name: factory.default_enabled for name, factory in HOST_COLLECTORS.items()}
    known[IPMI_POWER_COLLECTOR] = True
    known[GPU_COLLECTOR] = True
    known[EVENTS_COLLECTOR] = True
    known[JOBS_COLLECTOR] = True
    known[AGENT_COLLECTOR] = True
    return known


def enabled_collectors(settings: AgentSettings) -> set[str]:
    """Returns: the names to run.

    Raises:
        ConfigError: a configured name is not a known collector.
    """
    known = known_collectors()
    requested = set(settings.collectors.disabled) | set(settings.collectors.enabled)
    unknown = requested - set(known)
    if unknown:
        raise ConfigError(
            f"unknown collector(s) {sorted(unknown)}; known collectors: {sorted(known)}"
        )
    enabled = {name for name, default in known.items() if default}
    enabled |= set(settings.collectors.enabled)
    enabled -= set(settings.collectors.disabled)
    if settings.gpu.backend == "none":
        enabled.discard(GPU_COLLECTOR)
    if GPU_COLLECTOR not in enabled:
        enabled.discard(JOBS_COLLECTOR)  # jobs are attributed from the GPUs' process lists
    return enabled


def build_collectors(settings: AgentSettings, hostname: str, stack: ExitStack) -> BuiltCollectors:
    """Build the host and GPU collectors (the agent's own collector is built by the caller).

    Resources that need releasing (the NVML session) are registered on ``stack``.
    """
    enabled = enabled_collectors(settings)
    paths = HostPaths(settings.host.proc_root, settings.host.sys_root, settings.host.rootfs)
    options = _host_options(settings)
    collectors = build_host_collectors(
        paths, options, {name: name in enabled for name in HOST_COLLECTORS}
    )
    for collector in collectors:
        close = getattr(collector, "close", None)
        if callable(close):
            stack.callback(close)  # e.g. the filesystem collector's statvfs worker
    if IPMI_POWER_COLLECTOR in enabled:
        ipmi = settings.ipmi_power
        power = IpmiPowerCollector(
            ipmi.dev_root,
            IpmiPowerOptions(
                period_seconds=ipmi.period_seconds,
                timeout_seconds=ipmi.timeout_seconds,
                failures_before_backoff=ipmi.failures_before_backoff,
                backoff_seconds=ipmi.backoff_seconds,
            ),
        )
        stack.callback(power.close)  # stops its reading thread
        collectors.append(power)
    gpu: GpuCollector | None = None
    faults = fault_plan(settings)
    scripted = simulated_jobs(settings)
    if GPU_COLLECTOR in enabled:
        simulated = settings.gpu.backend == "simulated"
        backend = open_backend(
            "simulated" if simulated else "nvml",
            simulated_count=settings.gpu.simulated_count,
            simulated_latency=settings.gpu.simulated_latency,
            seed=settings.gpu.simulated_seed,
            faults=faults,
            simulated_jobs=scripted,
        )
        gpu = GpuCollector(
            backend,
            hostname=hostname,
            init_retry_seconds=settings.gpu.init_retry_seconds,
            budget_seconds=min(settings.gpu.tick_budget_seconds, settings.interval_seconds / 2),
            call_deadline_seconds=settings.gpu.call_deadline_seconds,
            track_processes=JOBS_COLLECTOR in enabled,
        )
        stack.callback(gpu.close)
        collectors.append(gpu)
    jobs: JobsCollector | None = None
    if gpu is not None and JOBS_COLLECTOR in enabled and scripted:
        # simulated GPUs list processes that are not on this host: their files are scripted
        jobs = JobsCollector(
            gpu.snapshots,
            hostname,
            SimulatedProcFiles(scripted),
            settings.jobs.mapping_dir,
            user_name=simulated_user_name(),
        )
    elif gpu is not None and JOBS_COLLECTOR in enabled:
        jobs = JobsCollector.on_host(paths, gpu.snapshots, hostname, settings.jobs.mapping_dir)
    if jobs is not None:
        collectors.append(jobs)  # after the GPU collector, so it sees this tick's snapshots
    events = (
        _events_collector(settings, hostname, gpu, stack, faults)
        if EVENTS_COLLECTOR in enabled
        else None
    )
    if events is not None:
        collectors.append(events)
    return BuiltCollectors(collectors, gpu, paths, events, jobs)


def simulated_jobs(settings: AgentSettings) -> tuple[SimulatedJob, ...]:
    """Returns: the simulated GPUs' scripted jobs, none for real GPUs."""
    gpu = settings.gpu
    if gpu.backend != "simulated":
        return ()
    return plan(gpu.simulated_jobs, gpu.simulated_count)


def fault_plan(settings: AgentSettings) -> FaultPlan | None:
    """Returns: the simulated GPUs' scripted faults, None for real GPUs or no faults."""
    gpu = settings.gpu
    if gpu.backend != "simulated" or gpu.simulated_faults == "none":
        return None
    start = gpu.simulated_faults_start
    return demo_plan(time.time() if start is None else start)


def _events_collector(
    settings: AgentSettings,
    hostname: str,
    gpu: GpuCollector | None,
    stack: ExitStack,
    faults: FaultPlan | None,
) -> EventsCollector:
    """XIDs from the kernel log and NVML's event API (or the simulated GPUs' fault plan);
    a fatal one fences its GPU."""
    sources: list[XidSource] = []
    if settings.events.kmsg_path is not None:
        sources.append(KmsgReader(settings.events.kmsg_path))
    if gpu is not None and settings.events.nvml and faults is not None:
        sources.append(SimulatedXidSource(faults, time.time))
    if gpu is not None and settings.events.nvml and settings.gpu.backend in ("auto", "nvml"):
        nvml_events = NvmlEventSource(quiet_when_absent=settings.gpu.backend == "auto")
        nvml_events.start()
        sources.append(nvml_events)
    fence_seconds = settings.gpu.fatal_xid_fence_seconds

    def fence(event: XidEvent) -> None:
        target = event.pci_bus_id or event.gpu_index
        if gpu is not None and target is not None and fence_seconds > 0:
            gpu.fence(target, fence_seconds, f"XID {event.code} {event.mnemonic}".strip())

    events = EventsCollector(
        sources,
        labels_resolver(gpu.gpu_labels if gpu is not None else list),
        hostname,
        gpus=gpu.gpu_labels if gpu is not None else None,
        on_fatal=fence,
    )
    stack.callback(events.close)  # stops the NVML event thread
    return events


def _host_options(settings: AgentSettings) -> HostOptions:
    host = settings.host
    overrides = {
        "mount_points_exclude": host.mount_points_exclude,
        "fs_types_exclude": host.fs_types_exclude,
        "disk_devices_exclude": host.disk_devices_exclude,
        "network_devices_exclude": host.network_devices_exclude,
    }
    return HostOptions(
        statvfs_timeout_seconds=host.statvfs_timeout_seconds,
        textfile_directory=str(host.textfile_directory) if host.textfile_directory else "",
        **{key: value for key, value in overrides.items() if value is not None},
    )
