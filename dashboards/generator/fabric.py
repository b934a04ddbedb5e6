"""The fabric dashboard: InfiniBand and RoCE ports, their traffic, state and errors.

Stage: dashboards (build time). Input: none; output: the ``Dashboard`` spec of ``dcmon-fabric``
(variables ``instance`` and ``device``, several or all of each) over node_exporter's
infiniband collector names (``node_infiniband_*{device, port}``, read from
``/sys/class/infiniband``): per-port throughput and packets, state, physical state and rate,
symbol and link errors, link-downed events, exhausted transport retries, the time ports wait
for credits and RoCE's congestion notifications.
"""

from __future__ import annotations

from dashboards.generator import thresholds as t
from dashboards.generator.common import IB_STATES, NODE_ROW_LINK, RATE
from dashboards.generator.spec import (
    STATE_TIMELINE,
    TABLE,
    TIME_SERIES,
    Dashboard,
    Panel,
    Query,
    Row,
    ValueMap,
    Variable,
    stat,
)

PORTS = 'instance=~"$instance", device=~"$device"'
PORT = "instance, device, port"
PORT_LEGEND = "{{instance}} {{device}} port {{port}}"
CREDIT_WAIT = (  # transmit-wait ticks of 8 bytes each, as a share of the link's rate
    f"rate(node_infiniband_port_transmit_wait_total{{{PORTS}}}[{RATE}]) * 8 "
    f"/ on ({PORT}) node_infiniband_rate_bytes_per_second{{{PORTS}}}"
)
PHYSICAL_STATES = (  # node_exporter's node_infiniband_physical_state_id
    ValueMap("1", "sleep", "orange"),
    ValueMap("2", "polling", "orange"),
    ValueMap("3", "disabled", "red"),
    ValueMap("4", "shift", "orange"),
    ValueMap("5", "link up", "green"),
    ValueMap("6", "link error recovery", "red"),
    ValueMap("7", "phy test", "orange"),
)
INSTANCES = Variable(
    "instance",
    "Node",
    "label_values(node_infiniband_port_data_received_bytes_total, instance)",
    multi=True,
    include_all=True,
)
DEVICES = Variable(
    "device",
    "HCA",
    'label_values(node_infiniband_port_data_received_bytes_total{instance=~"$instance"}, device)',
    multi=True,
    include_all=True,
)


def _per_port(metric: str, what: str = "", scale: str = "") -> Query:
    legend = f"{PORT_LEGEND} {what}".rstrip()
    return Query(f"rate({metric}{{{PORTS}}}[{RATE}]){scale}", legend)


GLANCE = Row(
    "At a glance",
    (
        stat("Ports", f"count(node_infiniband_state_id{{{PORTS}}})", width=3),
        stat("Ports not active", f"sum(node_infiniband_state_id{{{PORTS}}} != bool 4)",
             steps=t.any_is_bad(), width=3,
             description="Linked but not made ACTIVE by the subnet manager "
             "(InfiniBandPortNotActive), or down."),
        stat("Links not up", f"sum(node_infiniband_physical_state_id{{{PORTS}}} != bool 5)",
             steps=t.any_is_bad(), width=3, description="InfiniBandLinkDown, for ports that "
             "carried traffic."),
        stat("Congested ports", f"sum({CREDIT_WAIT} > bool {t.IB_CREDIT_WAIT_SHARE.value:g})",
             steps=t.any_is_bad("orange"), width=3, description="Ports losing more than a "
             "tenth of their link waiting for credits (InfiniBandPortCongested)."),
        stat("Worst symbol errors an hour", f"max(increase(node_infiniband_symbol_error_total"
             f"{{{PORTS}}}[1h]))", steps=t.above(t.IB_SYMBOL_ERRORS_PER_HOUR, "orange"),
             decimals=0, width=3, description="The IBTA bound: 120 an hour (BER 1e-12; "
             "InfiniBandSymbolErrors)."),
        stat("Ports with saturated counters", f"sum(dcmon_infiniband_port_saturated_counters"
             f"{{{PORTS}}} > bool 0)", steps=t.any_is_bad("orange"), width=3,
             description="PMA counters stuck at their ceiling read 0 rates, which blinds the "
             "error rules; clear them with perfquery -x -R."),
        stat("Received", f"sum(rate(node_infiniband_port_data_received_bytes_total{{{PORTS}}}"
             f"[{RATE}]))", "Bps", width=3),
        stat("Sent", f"sum(rate(node_infiniband_port_data_transmitted_bytes_total{{{PORTS}}}"
             f"[{RATE}]))", "Bps", width=3),
        Panel("Port details", TABLE, (
            Query(f"max by ({PORT}) (node_infiniband_state_id{{{PORTS}}})", column="state",
                  mappings=IB_STATES),
            Query(f"max by ({PORT}) (node_infiniband_physical_state_id{{{PORTS}}})",
                  column="physical state", mappings=PHYSICAL_STATES),
            Query(f"max by ({PORT}) (node_infiniband_rate_bytes_per_second{{{PORTS}}})",
                  column="rate", unit="Bps"),
            Query(f"max by ({PORT}) (node_infiniband_link_downed_total{{{PORTS}}})",
                  column="link downed"),
            Query(f"max by ({PORT}) (node_infiniband_symbol_error_total{{{PORTS}}})",
                  column="symbol errors"),
        ), width=16, height=8, link=NODE_ROW_LINK,
            columns=(("instance", "node"), ("device", "HCA"), ("port", "port")),
            description="Counts since the HCA's counters were last reset."),
        Panel("HCAs", TABLE, (
            Query(f"count by (instance, device) (node_infiniband_state_id{{{PORTS}}}) "
                  "* on (instance, device) group_left (board_id, firmware_version, hca_type) "
                  "max by (instance, device, board_id, firmware_version, hca_type) "
                  f"(node_infiniband_info{{{PORTS}}})", column="ports"),
        ), width=8, height=8,
            columns=(("instance", "node"), ("device", "HCA"), ("hca_type", "type"),
                     ("firmware_version", "firmware"), ("board_id", "board"))),
    ),
)  # fmt: skip

TRAFFIC = Row(
    "Traffic",
    (
        Panel("Received per port", TIME_SERIES, (
            _per_port("node_infiniband_port_data_received_bytes_total"),
        ), "Bps", width=12),
        Panel("Sent per port", TIME_SERIES, (
            _per_port("node_infiniband_port_data_transmitted_bytes_total"),
        ), "Bps", width=12),
        Panel("Packets per port", TIME_SERIES, (
            _per_port("node_infiniband_port_packets_received_total", "received"),
            _per_port("node_infiniband_port_packets_transmitted_total", "sent"),
        ), "pps", width=12),
        Panel("Time waiting for credits (congestion)", TIME_SERIES, (
            Query(CREDIT_WAIT, PORT_LEGEND),
        ), "percentunit", width=12, steps=t.above(t.IB_CREDIT_WAIT_SHARE, "orange"),
            description="Share of the link's capacity the port spent with data to send and no "
            "credits (transmit-wait ticks of 8 bytes, over the rate): back-pressure from the "
            "fabric."),
        Panel("RoCE congestion notifications", TIME_SERIES, (
            _per_port("node_infiniband_rp_cnp_packets_handled_total", "handled"),
            _per_port("node_infiniband_rp_cnp_ignored_packets_received_total", "ignored"),
        ), "pps", width=24, steps=t.above(t.ROCE_CNP_PER_S, "orange"),
            description="RoCE ports (mlx5): congestion notifications the adapter slowed down "
            "for (RoceCongestion past 1,000 a second), and those it ignored "
            "(RoceCongestionNotificationsIgnored: congestion control is off)."),
    ),
)  # fmt: skip

ERRORS = Row(
    "State and errors",
    (
        Panel("Errors a second per port", TIME_SERIES, (
            _per_port("node_infiniband_symbol_error_total", "symbol errors"),
            _per_port("node_infiniband_port_errors_received_total", "receive errors"),
            _per_port("node_infiniband_link_error_recovery_total", "link error recoveries"),
            _per_port("node_infiniband_link_downed_total", "links downed"),
            _per_port("dcmon_infiniband_req_transport_retries_exceeded_total",
                      "transport retries exceeded"),
        ), width=24, description="Symbol errors point at a bad cable or transceiver; link "
            "error recoveries and downed links at a flapping link."),
        Panel("Port state", STATE_TIMELINE, (
            Query(f"node_infiniband_state_id{{{PORTS}}}", PORT_LEGEND),
        ), width=12, mappings=IB_STATES),
        Panel("Physical state", STATE_TIMELINE, (
            Query(f"node_infiniband_physical_state_id{{{PORTS}}}", PORT_LEGEND),
        ), width=12, mappings=PHYSICAL_STATES),
    ),
)  # fmt: skip

DASHBOARD = Dashboard(
    "fabric",
    "dcmon / Fabric",
    "InfiniBand and RoCE ports (node_exporter's infiniband names): traffic, state and errors.",
    (GLANCE, TRAFFIC, ERRORS),
    (INSTANCES, DEVICES),
)
