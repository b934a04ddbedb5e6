"""The alerts dashboard: what fires, since when, who was told, and dcmon's own health.

Stage: dashboards (build time). Input: none; output: the ``Dashboard`` spec of ``dcmon-alerts``:
``ALERTS`` and ``ALERTS_FOR_STATE`` (dcmon's rule evaluation, or a Prometheus that evaluates the
exported pack) per alert name and severity, the notifications dcmon sent, the server's ingest
health and the agents' delivery.
"""

from __future__ import annotations

from dashboards.generator import thresholds as t
from dashboards.generator.common import RANGE, RATE
from dashboards.generator.spec import (
    BAR_GAUGE,
    STAT,
    STATE_TIMELINE,
    TABLE,
    TIME_SERIES,
    Dashboard,
    Panel,
    Query,
    Row,
    Step,
    ValueMap,
    stat,
)

ALERT_COLUMNS = (("alertname", "alert"), ("severity", "severity"), ("instance", "node"),
                 ("gpu", "GPU"))  # fmt: skip
SERVER_ONLY = (
    "From the server's /metrics: a Prometheus that scrapes dcmon has it, dcmon's own query API "
    "does not store it."
)


def _active_for(state: str) -> str:
    """Returns: how long each alert in ``state`` has been active (its ALERTS_FOR_STATE)."""
    return f'time() - (ALERTS_FOR_STATE and ignoring (alertstate) ALERTS{{alertstate="{state}"}})'


NOW = Row(
    "Now",
    (
        stat("Firing", 'count by (severity) (ALERTS{alertstate="firing"})', legend="{{severity}}",
             no_value="0", steps=t.any_is_bad("orange"), width=8),
        stat("Pending", 'count(ALERTS{alertstate="pending"})', no_value="0", width=4,
             description="Alerts whose condition holds, waiting out their 'for'."),
        stat("Nodes down", "sum(dcmon_node_up == bool 0)", steps=t.any_is_bad(), width=4),
        Panel("Notifications in range", STAT, (
            Query(f"sum by (outcome) (increase(dcmon_server_notifications_total[{RANGE}]))",
                  "{{outcome}}"),
        ), width=8, height=4, decimals=0, description=SERVER_ONLY),
        Panel("Firing alerts", TABLE, (Query(_active_for("firing"), column="active for"),),
              "s", width=12, height=9, columns=ALERT_COLUMNS),
        Panel("Pending alerts", TABLE, (Query(_active_for("pending"), column="pending for"),),
              "s", width=12, height=9, columns=ALERT_COLUMNS),
    ),
)  # fmt: skip

HISTORY = Row(
    "Over time",
    (
        Panel("Firing by alert", TIME_SERIES, (
            Query('count by (alertname) (ALERTS{alertstate="firing"})', "{{alertname}}"),
        ), stack=True, decimals=0),
        Panel("Alerts by severity and state", TIME_SERIES, (
            Query("count by (severity, alertstate) (ALERTS)", "{{severity}} {{alertstate}}"),
        ), decimals=0),
        Panel("Notifications a minute", TIME_SERIES, (
            Query("sum by (receiver, outcome) "
                  f"(rate(dcmon_server_notifications_total[{RATE}])) * 60",
                  "{{receiver}} {{outcome}}"),
        ), description=SERVER_ONLY),
        Panel("Alert timeline", STATE_TIMELINE, (
            Query('max by (alertname, instance) (ALERTS{alertstate="firing"} * 2 or '
                  'ALERTS{alertstate="pending"})', "{{alertname}} {{instance}}"),
        ), width=24, height=10, mappings=(ValueMap("1", "pending", "orange"),
                                          ValueMap("2", "firing", "red"))),
    ),
)  # fmt: skip

SERVER = Row(
    "dcmon server",
    (
        Panel("Ingest requests by status", TIME_SERIES, (
            Query(f"sum by (code) (rate(dcmon_server_ingest_requests_total[{RATE}]))",
                  "{{code}}"),
        ), "reqps", description=SERVER_ONLY),
        Panel("Ingest latency", TIME_SERIES, (
            Query("histogram_quantile(0.99, sum by (le) "
                  f"(rate(dcmon_server_ingest_duration_seconds_bucket[{RATE}])))", "p99"),
            Query("histogram_quantile(0.5, sum by (le) "
                  f"(rate(dcmon_server_ingest_duration_seconds_bucket[{RATE}])))", "median"),
        ), "s", description="From a request's whole body received to its acknowledgement. "
            + SERVER_ONLY),
        Panel("Samples stored a second", TIME_SERIES, (
            Query(f"sum(rate(dcmon_server_ingest_samples_total[{RATE}]))", "samples"),
        ), description=SERVER_ONLY),
        Panel("Nodes by state", BAR_GAUGE, (
            Query("max by (state) (dcmon_server_nodes)", "{{state}}"),
        ), width=12, height=5, description=SERVER_ONLY),
        stat("Maintenance leaders", "sum(dcmon_server_leader)", width=12, height=5,
             steps=(Step(None, "red"), Step(1, "green"), Step(2, "red")),
             description="Replicas running compaction, retention and rule evaluation: exactly "
             "one. " + SERVER_ONLY),
    ),
)  # fmt: skip

AGENTS = Row(
    "Agents' delivery",
    (
        Panel("Unsent backlog by node", TIME_SERIES, (
            Query("max by (instance) (dcmon_agent_spool_oldest_age_seconds)", "{{instance}}"),
        ), "s", steps=t.above(t.BACKLOG_S, "orange")),
        Panel("Spool use by node", TIME_SERIES, (
            Query("max by (instance) (dcmon_agent_spool_bytes / dcmon_agent_spool_budget_bytes)",
                  "{{instance}}"),
        ), "percentunit", steps=t.above(t.SPOOL_FULL_SHARE, "orange")),
        Panel("Failed pushes a minute", TIME_SERIES, (
            Query(f"sum by (instance) (rate(dcmon_agent_send_failures_total[{RATE}])) * 60",
                  "{{instance}}"),
        )),
        Panel("Clock skew by node", TIME_SERIES, (
            Query("max by (instance) (abs(dcmon_node_clock_skew_seconds))", "{{instance}}"),
        ), "s", steps=t.rising(t.CLOCK_SKEW_WARN_S, t.CLOCK_SKEW_CRIT_S)),
        Panel("Collectors failing by node", TIME_SERIES, (
            Query("sum by (instance) ((node_scrape_collector_success == bool 0) "
                  "and on (instance) dcmon_agent_info)", "{{instance}}"),
        ), steps=t.any_is_bad("orange"), decimals=0,
            description="dcmon agents' collectors that failed on their last tick."),
    ),
)  # fmt: skip

DASHBOARD = Dashboard(
    "alerts",
    "dcmon / Alerts",
    "Alerts firing and pending by name and severity, the notifications sent, and the health of "
    "dcmon's server and agents.",
    (NOW, HISTORY, SERVER, AGENTS),
)
