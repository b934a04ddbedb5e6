"""The simulated fabric: the real collector's series, counters that grow with time at realistic
rates, one congested port, marked simulated; and how a simulated agent gets it."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from agent.collectors.base import Sample
from agent.collectors.fabric import SimulatedFabricCollector, simulated
from agent.config import ConfigError, load_settings
from agent.main import _overrides, build, parser, with_simulated_fabric
from agent.transport.memory import MemoryTransport
from agent.wire.schema import Ack
from tests.catalog_check import assert_conforms

BOOT = 1_800_000_000.0
PORT = {"device": "mlx5_0", "port": "1"}


def by_key(samples: list[Sample]) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("device", "")): s.value for s in samples}


def test_three_ndr_ports_and_a_roce_port_with_node_exporters_names_marked_simulated() -> None:
    samples = SimulatedFabricCollector(4, boot_time_s=BOOT).collect(BOOT + 3600)
    values = by_key(samples)

    for device in ("mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"):
        assert values[("node_infiniband_state_id", device)] == 4
        assert values[("node_infiniband_physical_state_id", device)] == 5
        assert values[("node_infiniband_symbol_error_total", device)] == 0
        assert values[("node_infiniband_link_downed_total", device)] == 0
    rates = {device: values[("node_infiniband_rate_bytes_per_second", device)]
             for device in ("mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3")}  # fmt: skip
    assert rates == {"mlx5_0": 50e9, "mlx5_1": 50e9, "mlx5_2": 50e9, "mlx5_3": 12.5e9}
    infos = {s.labels["device"]: s.labels for s in samples if s.name == "node_infiniband_info"}
    assert {device: info["hca_type"] for device, info in infos.items()} == {
        "mlx5_0": "MT4129", "mlx5_1": "MT4129", "mlx5_2": "MT4129", "mlx5_3": "MT4125",
    }  # fmt: skip
    assert {info["firmware_version"] for info in infos.values()} == {
        "28.39.1002 (simulated)",
        "22.39.1002 (simulated)",
    }
    assert_conforms(samples, source="infiniband")


def test_traffic_is_the_integral_of_a_realistic_rate_and_only_grows() -> None:
    fabric = SimulatedFabricCollector(2, seed=7, boot_time_s=BOOT)
    previous: dict[tuple[str, str], float] = {}
    for step in range(0, 7200, 10):
        values = by_key(fabric.collect(BOOT + step))
        for key, value in values.items():
            if key[0].endswith("_total"):
                assert value >= previous.get(key, 0.0), (key, step)
        if previous:
            for device in ("mlx5_0", "mlx5_1"):
                for metric in (
                    "node_infiniband_port_data_received_bytes_total",
                    "node_infiniband_port_data_transmitted_bytes_total",
                ):
                    line = values[("node_infiniband_rate_bytes_per_second", device)]
                    rate = (values[(metric, device)] - previous[(metric, device)]) / 10
                    assert 0.09 * line < rate < 0.51 * line, (metric, device, step, rate)
        previous = values
    data = previous[("node_infiniband_port_data_received_bytes_total", "mlx5_0")]
    packets = previous[("node_infiniband_port_packets_received_total", "mlx5_0")]
    assert 4000 < data / packets < 4200
    assert data % 4 == 0  # the kernel counts 4-octet words


def test_one_port_waits_for_credits_one_minute_in_ten() -> None:
    fabric = SimulatedFabricCollector(4, seed=2, boot_time_s=BOOT)
    wait = "node_infiniband_port_transmit_wait_total"

    def ticks(t: float) -> dict[str, float]:
        return {s.labels["device"]: s.value for s in fabric.collect(BOOT + t) if s.name == wait}

    hour = ticks(3600)
    assert hour["mlx5_2"] == pytest.approx(6 * 60 * simulated.WAIT_TICKS_PER_SECOND, rel=0.02)
    assert hour["mlx5_0"] == hour["mlx5_1"] == hour["mlx5_3"] == 0
    growth = [ticks(t + 10)["mlx5_2"] - ticks(t)["mlx5_2"] for t in range(0, 1200, 10)]
    assert sum(1 for g in growth if g > 0) in range(12, 15)  # 60 s in each 600 s, twice


def test_the_wait_counter_stops_at_its_32_bit_ceiling_and_is_counted_saturated() -> None:
    fabric = SimulatedFabricCollector(1, boot_time_s=BOOT)

    values = by_key(fabric.collect(BOOT + 30 * 86400))

    assert values[("node_infiniband_port_transmit_wait_total", "mlx5_0")] == 2**32 - 1
    assert values[("dcmon_infiniband_port_saturated_counters", "mlx5_0")] == 1
    early = by_key(fabric.collect(BOOT + 86400))
    assert early[("dcmon_infiniband_port_saturated_counters", "mlx5_0")] == 0


def test_same_seed_same_series_other_seed_other_series() -> None:
    def received(seed: int) -> float:
        samples = SimulatedFabricCollector(1, seed=seed, boot_time_s=BOOT).collect(BOOT + 500)
        return by_key(samples)[("node_infiniband_port_data_received_bytes_total", "mlx5_0")]

    assert received(3) == received(3)
    assert received(3) != received(4)


def test_before_the_driver_load_every_counter_is_zero() -> None:
    samples = SimulatedFabricCollector(1, boot_time_s=BOOT).collect(BOOT - 5)

    assert all(s.value == 0 for s in samples if s.name.endswith("_total"))


def test_no_ports_no_samples_and_negative_is_refused() -> None:
    assert SimulatedFabricCollector(0).collect(BOOT) == []
    with pytest.raises(ValueError, match="ports"):
        SimulatedFabricCollector(-1)


def fabric_names(settings_overrides: dict[str, object], tmp_path: Path) -> list[str]:
    settings = load_settings(None, {"state_dir": tmp_path, **settings_overrides})
    return [c.name for c in with_simulated_fabric(settings, []) if c.name == "infiniband"]


def test_simulated_gpus_bring_four_fabric_ports_real_ones_none(tmp_path: Path) -> None:
    settings = load_settings(None, {"state_dir": tmp_path, "gpu": {"backend": "simulated"}})
    assert settings.gpu.fabric_ports == 4
    for backend in ("auto", "nvml", "none"):
        other = load_settings(None, {"state_dir": tmp_path, "gpu": {"backend": backend}})
        assert other.gpu.fabric_ports == 0
        assert fabric_names({"gpu": {"backend": backend}}, tmp_path) == []


def test_the_simulated_fabric_replaces_the_real_collector(tmp_path: Path) -> None:
    settings = load_settings(None, {"state_dir": tmp_path, "gpu": {"backend": "simulated"}})

    class RealInfiniband:
        name = "infiniband"

        def collect(self, now: float) -> list[Sample]:
            raise AssertionError("the node's own fabric is not read on a simulated node")

    collectors = with_simulated_fabric(settings, [RealInfiniband()])

    assert len(collectors) == 1 and isinstance(collectors[0], SimulatedFabricCollector)


def test_zero_ports_or_a_disabled_infiniband_collector_mean_no_simulated_fabric(
    tmp_path: Path,
) -> None:
    gpu = {"backend": "simulated", "simulated_fabric_ports": 0}
    assert fabric_names({"gpu": gpu}, tmp_path) == []
    disabled = {"gpu": {"backend": "simulated"}, "collectors": {"disabled": ["infiniband"]}}
    assert fabric_names(disabled, tmp_path) == []
    assert fabric_names({"gpu": {"backend": "simulated"}}, tmp_path) == ["infiniband"]


def test_simulated_fabric_ports_need_simulated_gpus(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="simulated_fabric_ports"):
        load_settings(None, {"state_dir": tmp_path, "gpu": {"simulated_fabric_ports": 2}})
    with pytest.raises(ConfigError, match="simulated_fabric_ports"):
        load_settings(
            None,
            {"state_dir": tmp_path, "gpu": {"backend": "simulated", "simulated_fabric_ports": 65}},
        )


def test_the_command_line_sets_the_port_count(tmp_path: Path) -> None:
    args = parser().parse_args(["--gpu-backend", "simulated", "--simulated-fabric-ports", "8"])

    settings = load_settings(None, {"state_dir": tmp_path, **_overrides(args)})

    assert settings.gpu.fabric_ports == 8


def test_a_simulated_agent_sends_the_fabric_series(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "state_dir": tmp_path,
            "gpu": {"backend": "simulated", "simulated_count": 1, "simulated_fabric_ports": 2},
        },
    )
    with ExitStack() as stack:
        transport = MemoryTransport(lambda payload: Ack(status="accepted", seq=0))
        batch = build(settings, stack, transport, ephemeral_identity=True).agent.tick()

    statuses = {status.name: status.success for status in batch.collectors}
    assert statuses["infiniband"] is True
    families = {family.name: family for family in batch.metrics}
    assert len(families["node_infiniband_port_data_received_bytes_total"].samples) == 2
    assert len(families["node_infiniband_info"].samples) == 2
