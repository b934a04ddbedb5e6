"""The simulated fabric's RoCE port: the counters a real RoCE port adds, CNPs that always grow
and burst in the congestion minute; and two simulated hours through the shipped fabric rules
(none fires) and the dashboard's RoCE panel (never empty)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from agent.collectors.base import HostPaths, Sample
from agent.collectors.fabric import SimulatedFabricCollector, simulated
from agent.collectors.host.infiniband import InfinibandCollector
from server.promql.engine import Engine
from server.promql.seam import MemorySeries
from server.promql.values import Vector
from server.rules import group as evaluator
from server.rules.load import load_file
from server.rules.model import AlertingRule
from server.rules.state import State
from tests.catalog_check import assert_conforms

ROOT = Path(__file__).resolve().parents[4]
CONNECTX = ROOT / "tests" / "data" / "host" / "connectx"
BOOT = 1_800_000_000.0
HANDLED = "node_infiniband_rp_cnp_packets_handled_total"
IGNORED = "node_infiniband_rp_cnp_ignored_packets_received_total"
WAIT = "node_infiniband_port_transmit_wait_total"


def names_of(samples: list[Sample], device: str) -> set[str]:
    return {s.name for s in samples if s.labels.get("device") == device}


def value(samples: list[Sample], name: str, device: str) -> float:
    (found,) = [s.value for s in samples if s.name == name and s.labels["device"] == device]
    return found


def test_the_roce_port_adds_what_a_recorded_roce_port_adds_to_an_infiniband_one() -> None:
    recorded = InfinibandCollector(HostPaths(sys=CONNECTX / "sys")).collect(BOOT)
    roce_only = names_of(recorded, "mlx5_3") - names_of(recorded, "mlx5_0")
    assert HANDLED in roce_only  # the recorded tree's mlx5_3 is RoCE, its mlx5_0 InfiniBand

    samples = SimulatedFabricCollector(4, boot_time_s=BOOT).collect(BOOT + 3600)

    assert names_of(samples, "mlx5_3") - names_of(samples, "mlx5_0") == roce_only
    info = next(s.labels for s in recorded if s.name == "node_infiniband_info" and
                s.labels["device"] == "mlx5_3")  # fmt: skip
    simulated_info = next(s.labels for s in samples if s.name == "node_infiniband_info" and
                          s.labels["device"] == "mlx5_3")  # fmt: skip
    assert simulated_info["hca_type"] == info["hca_type"] == "MT4125"
    assert simulated_info["board_id"] == info["board_id"]
    assert value(samples, "node_infiniband_rate_bytes_per_second", "mlx5_3") == value(
        recorded, "node_infiniband_rate_bytes_per_second", "mlx5_3"
    )
    assert_conforms(samples, source="infiniband")


def test_one_port_is_infiniband_two_ports_make_the_second_roce() -> None:
    one = SimulatedFabricCollector(1, boot_time_s=BOOT).collect(BOOT + 60)
    two = SimulatedFabricCollector(2, boot_time_s=BOOT).collect(BOOT + 60)

    assert not [s for s in one if s.name == HANDLED]
    assert [s.labels["device"] for s in two if s.name == HANDLED] == ["mlx5_1"]


def test_cnps_grow_steadily_and_burst_in_the_congestion_minute_without_ignored_ones() -> None:
    fabric = SimulatedFabricCollector(4, seed=2, boot_time_s=BOOT)  # mlx5_2 waits for credits
    steady = simulated.ROCE_STEADY_PER_SECOND["rp_cnp_handled"]
    burst = simulated.ROCE_BURST_PER_SECOND["rp_cnp_handled"]
    readings = [fabric.collect(BOOT + t) for t in range(0, 1210, 10)]
    handled = [value(r, HANDLED, "mlx5_3") for r in readings]
    wait = [value(r, WAIT, "mlx5_2") for r in readings]

    growth = [(b - a) / 10 for a, b in pairwise(handled)]
    assert min(growth) >= steady - 0.1  # never flat: the panel always has a rate
    bursting = [i for i, g in enumerate(growth) if g > 2 * steady]
    assert len(bursting) in range(12, 15)  # 60 s in each 600 s, twice
    assert max(growth) == burst
    waiting = [i for i, (a, b) in enumerate(pairwise(wait)) if b > a]
    assert bursting == waiting  # one congestion minute for the whole fabric
    assert {value(r, IGNORED, "mlx5_3") for r in readings} == {0.0}


def _two_hours(seed: int) -> MemorySeries:
    """Returns: the simulated fabric of node ``sim`` sampled every 30 s for two hours."""
    fabric = SimulatedFabricCollector(4, seed=seed, boot_time_s=BOOT)
    series: dict[tuple[tuple[str, str], ...], tuple[list[int], list[float]]] = {}
    for step in range(0, 7200 + 1, 30):
        for sample in fabric.collect(BOOT + step):
            named = {"__name__": sample.name, "instance": "sim", **sample.labels}
            times, values = series.setdefault(tuple(sorted(named.items())), ([], []))
            times.append(step * 1000)
            values.append(sample.value)
    memory = MemorySeries()
    for key, (times, values) in series.items():
        memory.add(dict(key), times, values)
    return memory


def test_two_simulated_hours_fire_no_fabric_rule_and_always_fill_the_roce_panel() -> None:
    (group,) = load_file(str(ROOT / "alerts" / "fabric.yaml")).groups
    assert any(isinstance(r, AlertingRule) and r.alert == "RoceCongestion" for r in group.rules)
    for seed in (0, 3):  # seed 3 makes the RoCE port mlx5_3 the one waiting for credits
        series = _two_hours(seed)
        state = evaluator.GroupState()
        active: set[str] = set()
        for minute in range(0, 121):
            state, outcomes = evaluator.evaluate(group, state, series, _Discard(), minute * 60_000)
            assert not [o.error for o in outcomes if o.error], seed
            for index, alerts in state.alerts.items():
                rule = group.rules[index]
                if isinstance(rule, AlertingRule) and any(
                    alert.state in (State.PENDING, State.FIRING) for alert in alerts.values()
                ):
                    active.add(rule.alert)
        assert active == set(), (seed, active)
        engine = Engine(series)
        panel = f"rate({HANDLED}[10m])"  # the dashboard's panel over a 10-minute window
        for minute in range(10, 121):
            assert _values(engine, panel, minute)[0] > 0, (seed, minute)
        (peak,) = _values(engine, f"max_over_time(rate({HANDLED}[5m])[2h:1m])", 120)
        assert 10 < peak < 1000  # RoceCongestion: rate(...[5m]) > 1000 for 15m


def _values(engine: Engine, expr: str, minute: int) -> list[float]:
    result = engine.instant(expr, minute * 60_000).value
    assert isinstance(result, Vector)
    return [float(series.values[0]) for series in result.series if series.present[0]]


class _Discard:
    def write(self, labels: object, ts_ms: int, value: float) -> None:
        """The group's recording output is not needed here (the fabric pack records nothing)."""
