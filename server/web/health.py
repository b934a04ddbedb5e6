"""How the pages rate a GPU: failing, hot, healthy, or unknown (its node is down).

Stage: latest values and recent events -> (this) -> the fleet, node and GPU pages. It reuses
the rebalancing snapshot's reading of failures (``server.rebalancing.snapshot_health``): a GPU
that stopped answering, uncorrectable ECC errors, a row-remap failure, or a critical XID within
the last hour is failing; a GPU within 5 °C of its slowdown temperature is hot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from server.events.store import EventRecord
from server.latest.cache import NodeLatest
from server.rebalancing.snapshot_health import SLOWDOWN, latest_by_uuid, latest_failures

HOT_MARGIN_CELSIUS = 5.0
XID_LOOKBACK_SECONDS = 3600.0
HEALTH_ORDER = {"failing": 0, "hot": 1, "unknown": 2, "healthy": 3}


@dataclass(frozen=True)
class Health:
    state: str  # failing, hot, healthy or unknown
    reason: str  # what showed it ("" when healthy)


UNKNOWN = Health("unknown", "node down: no recent readings")
HEALTHY = Health("healthy", "")


def critical_xids(events: Iterable[EventRecord]) -> dict[tuple[str, str], str]:
    """Returns: (node name, UUID or "#index") -> a description of the latest critical XID."""
    found: dict[tuple[str, str], str] = {}
    for record in events:
        event = record.event
        if event.severity != "critical":
            continue
        key = event.uuid or (f"#{event.gpu_index}" if event.gpu_index is not None else "")
        found.setdefault((record.node_name, key), f"XID {event.code} {event.mnemonic}".strip())
    return found


class HealthReader:
    """Rates the GPUs of one node from its newest batch and the fleet's recent critical XIDs."""

    def __init__(self, xids: Mapping[tuple[str, str], str]) -> None:
        self._xids = xids

    def rate(
        self,
        node_name: str,
        readings_by_uuid: Mapping[str, Mapping[str, float]] | None,
        up: bool,
        uuid: str,
        index: int,
        temperature_celsius: float | None,
    ) -> Health:
        xid = self._xids.get((node_name, uuid)) or self._xids.get((node_name, f"#{index}"))
        if not up or readings_by_uuid is None:
            return Health("failing", xid) if xid else UNKNOWN
        readings = readings_by_uuid.get(uuid, {})
        failures = [
            f.kind.value + (f" ({f.detail})" if f.detail else "") for f in latest_failures(readings)
        ]
        if xid:
            failures.append(xid)
        if failures:
            return Health("failing", "; ".join(failures))
        slowdown = readings.get(SLOWDOWN)
        if (
            temperature_celsius is not None
            and slowdown
            and temperature_celsius >= slowdown - HOT_MARGIN_CELSIUS
        ):
            return Health("hot", f"{temperature_celsius:.0f} °C, slowdown at {slowdown:.0f} °C")
        return HEALTHY


def node_readings(node_latest: NodeLatest | None) -> dict[str, dict[str, float]] | None:
    """Returns: UUID -> the health readings of the node's newest batch (None without one)."""
    return None if node_latest is None else latest_by_uuid(node_latest)
