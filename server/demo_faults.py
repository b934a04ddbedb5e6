"""``dcmon demo --scenario faults``: a simulated GPU node with trouble, and a webhook to tell.

On top of the usual demo (a server and an agent for this machine) the scenario runs:

- a second agent, node ``FAULTY_NODE``, with 8 simulated GPUs following the fault timeline
  ``agent.collectors.gpu.faults.demo_plan`` (an XID, an overheating GPU, then the whole node
  silent for a while: the supervisor freezes its process), started from the same moment the
  demo starts, so the banner can say when each alert is due;
- a webhook receiver (``server.demo_webhook``) on a free loopback port, which prints every
  notification in the terminal and appends it to ``webhook.jsonl``;
- a direct-receivers file (Alertmanager's format) routing every alert to that webhook, named
  in the server's ``[notify]`` settings.

The shipped rule pack does the rest at its real timings (groups every minute): the alerts are
listed on the dashboard page and at ``/api/v1/alerts`` as they fire, and resolve as each fault
ends. Everything is written to the data directory, so the printed commands reproduce it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.collectors.gpu.faults import FaultPlan, demo_plan, describe
from server.demo_supervisor import Extra

FAULTY_NODE = "demo-gpu-node"
GROUP_WAIT = "10s"


@dataclass(frozen=True)
class Scenario:
    plan: FaultPlan
    skip_s: float
    extras: tuple[Extra, ...]
    notify: dict[str, str]  # the server's [notify] table
    webhook_url: str
    webhook_log: Path


TomlWriter = Callable[[Path, Mapping[str, Any], str], None]


def prepare(
    data_dir: Path,
    base_url: str,
    interval: float,
    python: list[str],
    now: float,
    skip_s: float,
    write_toml: TomlWriter,
) -> Scenario:
    """Write the scenario's agent config (with the demo's ``write_toml``) and receivers file;
    returns what the demo runs. The timeline starts ``skip_s`` seconds before ``now``."""
    start = now - skip_s
    plan = demo_plan(start)
    port = _free_port()
    webhook_url = f"http://127.0.0.1:{port}/"
    webhook_log = data_dir / "webhook.jsonl"
    receivers = data_dir / "receivers.yml"
    receivers.write_text(_receivers_yaml(webhook_url), encoding="utf-8")
    agent_config = data_dir / f"{FAULTY_NODE}.toml"
    write_toml(
        agent_config,
        {
            "server_url": base_url,
            "token_file": str(data_dir / "agent.token"),
            "state_dir": str(data_dir / FAULTY_NODE),
            "node_name": FAULTY_NODE,
            "hostname": FAULTY_NODE,  # not this machine's: its GPUs are its own
            "interval_seconds": interval,
            "gpu": {
                "backend": "simulated",
                "simulated_count": 8,
                "simulated_seed": 1,  # GPU identities of its own, not the local agent's
                "simulated_faults": "demo",
                "simulated_faults_start": start,
            },
        },
        "dcmon demo's simulated faulty GPU node (--scenario faults)",
    )
    silences = tuple(
        (max(0.0, begin - now), end - now) for begin, end in plan.silences() if end > now
    )
    extras = (
        Extra(
            "webhook",
            [*python[:-1], "server.demo_webhook", "--port", str(port), "--log", str(webhook_log)],
        ),
        Extra(
            FAULTY_NODE,
            [*python, "agent", "--config", str(agent_config)],
            agent=True,
            frozen=silences,
        ),
    )
    return Scenario(
        plan, skip_s, extras, {"receivers_file": str(receivers)}, webhook_url, webhook_log
    )


def banner_lines(scenario: Scenario) -> list[str]:
    when = "from now" if not scenario.skip_s else f"from {scenario.skip_s:g} s ago"
    return [
        f"Scenario 'faults' on node {FAULTY_NODE} (times {when}; the rule pack evaluates "
        "every minute):",
        *(f"  {line}" for line in describe(scenario.plan)),
        "  alerts fire a round or a 'for' later and resolve after each fault ends (about "
        "20 minutes for all)",
        f"  alerts are listed on the dashboard and sent to a webhook ({scenario.webhook_url}), "
        f"which prints them here and keeps them in {scenario.webhook_log}",
    ]


def _receivers_yaml(url: str) -> str:
    config = {
        "route": {
            "receiver": "demo-webhook",
            "group_by": ["alertname", "instance"],
            "group_wait": GROUP_WAIT,
            "group_interval": "1m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {"name": "demo-webhook", "webhook_configs": [{"url": url, "send_resolved": True}]}
        ],
    }
    header = "# dcmon demo --scenario faults: every alert to the demo's webhook receiver.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
