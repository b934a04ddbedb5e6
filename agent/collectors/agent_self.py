"""The agent's own health: delivery backlog, drops, send failures, state writes, CPU and memory.

Operators need to see a struggling agent (server away, spool filling up) from the server side,
and the agent's footprint on every node, without logging in to the node.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path

from agent import __version__
from agent.collectors.base import Sample
from agent.shipper import ShipperStats
from agent.spool.base import SpoolStats

_PAGE_SIZE = resource.getpagesize()


class AgentSelfCollector:
    """Samples ``dcmon_agent_*`` from the spool, the shipper and this process."""

    name = "agent"

    def __init__(
        self,
        spool_stats: Callable[[], SpoolStats],
        shipper_stats: Callable[[], ShipperStats],
        last_tick_seconds: Callable[[], float | None],
        proc_self: Path = Path("/proc/self"),
        state_write_errors: Callable[[], int] | None = None,
    ) -> None:
        """Args:
        state_write_errors: failed writes of the state directory's files (the batch seq);
            None: not reported.
        """
        self._spool_stats = spool_stats
        self._shipper_stats = shipper_stats
        self._last_tick_seconds = last_tick_seconds
        self._proc_self = proc_self
        self._state_write_errors = state_write_errors

    def collect(self, now: float) -> list[Sample]:
        spool = self._spool_stats()
        shipper = self._shipper_stats()
        times = os.times()
        samples = [
            Sample("dcmon_agent_info", {"version": __version__}, 1.0),
            Sample("dcmon_agent_spool_batches", {}, float(spool.batches)),
            Sample("dcmon_agent_spool_bytes", {}, float(spool.bytes)),
            Sample("dcmon_agent_spool_oldest_age_seconds", {}, spool.oldest_age_seconds),
            Sample(
                "dcmon_agent_spool_dropped_batches_total", {}, float(spool.dropped_batches_total)
            ),
            Sample("dcmon_agent_spool_dropped_bytes_total", {}, float(spool.dropped_bytes_total)),
            Sample(
                "dcmon_agent_spool_corrupt_records_total", {}, float(spool.corrupt_records_total)
            ),
            Sample("dcmon_agent_spool_degraded", {}, 1.0 if spool.degraded else 0.0),
            Sample("dcmon_agent_spool_budget_bytes", {}, float(spool.budget_bytes)),
            Sample("dcmon_agent_sent_batches_total", {}, float(shipper.sent_batches_total)),
            Sample("dcmon_agent_send_failures_total", {}, float(shipper.send_failures_total)),
            Sample("dcmon_agent_rejected_batches_total", {}, float(shipper.rejected_batches_total)),
            Sample("dcmon_agent_poison_batches_total", {}, float(shipper.poison_batches_total)),
            Sample("dcmon_agent_shipper_restarts_total", {}, float(shipper.restarts_total)),
            Sample("dcmon_agent_process_cpu_seconds_total", {}, times.user + times.system),
        ]
        rss = self._resident_bytes()
        if rss is not None:
            samples.append(Sample("dcmon_agent_process_resident_memory_bytes", {}, rss))
        if self._state_write_errors is not None:
            errors = float(self._state_write_errors())
            samples.append(Sample("dcmon_agent_state_write_errors_total", {}, errors))
        last_tick = self._last_tick_seconds()
        if last_tick is not None:
            samples.append(Sample("dcmon_agent_tick_duration_seconds", {}, last_tick))
        return samples

    def _resident_bytes(self) -> float | None:
        try:
            fields = (self._proc_self / "statm").read_text().split()
        except OSError:
            return None
        return float(int(fields[1]) * _PAGE_SIZE) if len(fields) > 1 else None
