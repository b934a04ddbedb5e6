"""``dcmon demo`` as a newcomer runs it: real demo, server and agent processes on 127.0.0.1.

The demo supervises: a server that dies comes back while the agent keeps running (its spool
rides out the gap); SIGHUP (the terminal closed) stops both children; a second demo on the same
data directory refuses, naming the first one's PID; an explicit busy --port is an error; and the
settings it runs the server with are in a config file that starts the same server by hand.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from server.auth.secrets import sha256_hex
from server.settings import load_settings
from tests.e2e.processes import DCMON, Process, get, running, wait_for
from tests.integration import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _children(pid: int) -> dict[int, str]:
    """Returns: the live child processes of ``pid`` with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _role(children: dict[int, str], role: str) -> int:
    (pid,) = [pid for pid, cmdline in children.items() if f" -m agent {role} " in cmdline]
    return pid


@contextmanager
def _demo(
    tmp_path: Path, port: int, *extra: str, name: str = "demo", bench: bool = False
) -> Iterator[Process]:
    """A running demo (without its benchmark request unless ``bench``); its children are
    killed at the end whatever happened to it."""
    argv = [*DCMON, "demo", "--port", str(port), "--data-dir", str(tmp_path / "data"),
            "--gpus", "none", "--interval", "1", *extra]  # fmt: skip
    if not bench:
        argv.append("--no-bench")
    seen: set[int] = set()
    with running(argv, tmp_path / f"{name}.log") as demo:
        try:
            yield demo
        finally:
            seen |= set(_children(demo.popen.pid))
            if demo.popen.poll() is None:
                demo.stop(signal.SIGINT, timeout=40)
    for pid in seen:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _ready(url: str) -> bool:
    try:
        return get(f"{url}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def _pushes(url: str) -> float:
    """Returns: ingest requests the server process has answered since it started."""
    total = 0.0
    for line in get(f"{url}/metrics").text.splitlines():
        if line.startswith("dcmon_server_ingest_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _started(demo: Process, url: str) -> None:
    wait_for(lambda: f"{url}/" in demo.output(), 60, "the demo banner")
    wait_for(lambda: _pushes(url) > 0, 30, "a first push")


def test_a_dead_server_is_restarted_and_the_agent_keeps_running(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _demo(tmp_path, port) as demo:
        _started(demo, url)
        children = _children(demo.popen.pid)
        server, agent = _role(children, "server"), _role(children, "agent")
        os.kill(server, signal.SIGKILL)
        wait_for(lambda: "restarting" in demo.output(), 20, "the demo to notice")
        wait_for(lambda: _ready(url), 60, "the restarted server")
        children = _children(demo.popen.pid)
        assert _role(children, "server") != server
        assert _role(children, "agent") == agent, "the agent must ride out the outage"
        wait_for(lambda: _pushes(url) > 0, 30, "the agent pushing to the new server")
        assert demo.popen.poll() is None
        assert demo.stop(signal.SIGINT, timeout=40) == 0
    output = demo.output()
    assert "Traceback" not in output
    assert "the server exited" in output and "the agent keeps" in output


def test_sighup_stops_server_and_agent(tmp_path: Path) -> None:
    port = free_port()
    with _demo(tmp_path, port) as demo:
        _started(demo, f"http://127.0.0.1:{port}")
        children = set(_children(demo.popen.pid))
        assert len(children) == 2
        demo.popen.send_signal(signal.SIGHUP)
        demo.popen.wait(timeout=40)
        left = [pid for pid in children if _alive(pid)]
        assert left == [], f"orphaned after SIGHUP: {left}\n{demo.output()}"


def test_a_killed_demo_takes_its_children_with_it(tmp_path: Path) -> None:
    """SIGKILL runs no handler: the kernel's parent-death signal stops the children."""
    port = free_port()
    with _demo(tmp_path, port) as demo:
        _started(demo, f"http://127.0.0.1:{port}")
        children = set(_children(demo.popen.pid))
        demo.popen.kill()
        demo.popen.wait(timeout=10)
        wait_for(lambda: not any(_alive(pid) for pid in children), 30, "the children to stop")


def test_a_second_demo_on_the_same_data_dir_refuses_with_the_pid(tmp_path: Path) -> None:
    port = free_port()
    with _demo(tmp_path, port) as first:
        _started(first, f"http://127.0.0.1:{port}")
        second = subprocess.run(
            [*DCMON, "demo", "--port", str(free_port()), "--data-dir", str(tmp_path / "data"),
             "--gpus", "none"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"PID {first.popen.pid}" in second.stderr, second.stderr
        assert first.popen.poll() is None and len(_children(first.popen.pid)) == 2


def test_an_explicit_busy_port_is_an_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*DCMON, "demo", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--gpus", "none"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "leave out --port" in result.stderr


def test_the_printed_commands_start_the_same_server_and_agent_by_hand(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _demo(tmp_path, port) as demo:
        _started(demo, url)
        assert demo.stop(signal.SIGINT, timeout=40) == 0
    data = (tmp_path / "data").resolve()
    config = data / "server.toml"
    assert f"dcmon server --config {config}" in demo.output()
    settings = load_settings(config, {})
    token = (data / "agent.token").read_text().strip()
    assert settings.ingest_token_sha256 == [sha256_hex(token)]
    assert (settings.listen_port, settings.data_dir, settings.open_reads) == (port, data, True)
    assert settings.rules_shipped  # the demo evaluates the shipped pack

    with running([*DCMON, "server", "--config", str(config)], tmp_path / "server.log") as server:
        wait_for(lambda: _ready(url), 60, "the server started by hand")
        nodes = get(f"{url}/api/v1/nodes").json()
        assert len(nodes["nodes"]) == 1, nodes  # the demo's node, from the same database
        agent_config = data / "agent.toml"
        assert f"dcmon agent --config {agent_config}" in demo.output()
        once = subprocess.run(
            [*DCMON, "agent", "--once", "--config", str(agent_config)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert once.returncode == 0, once.stderr
        assert server.stop() == 0


def _webhook_alerts(path: Path) -> list[tuple[str, str, str]]:
    """Returns: (status, alertname, instance) of every alert the demo's webhook received."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        for alert in json.loads(line)["alerts"]:
            labels = alert["labels"]
            out.append((alert["status"], labels["alertname"], labels.get("instance", "")))
    return out


def test_the_faults_scenario_fires_an_xid_alert_to_the_page_and_the_webhook(
    tmp_path: Path,
) -> None:
    """55 s into the timeline, so the XID comes 5 s after start: GpuXidFatal reaches the
    webhook (printed in the terminal), /api/v1/alerts and the page within a round or two. The
    rest of the timeline (each alert firing and resolving) is tests/server/test_demo_faults.py."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _demo(tmp_path, port, "--scenario", "faults", "--faults-skip", "55", bench=True) as demo:
        _started(demo, url)
        lasting = [c for c in _children(demo.popen.pid).values() if "demo_bench" not in c]
        assert len(lasting) == 4  # server, webhook, two agents (and the benchmark request)
        hook = tmp_path / "data" / "webhook.jsonl"
        wanted = ("firing", "GpuXidFatal", "demo-gpu-node")
        wait_for(lambda: wanted in _webhook_alerts(hook), 150, "GpuXidFatal at the webhook")
        assert "webhook: FIRING   GpuXidFatal  demo-gpu-node GPU 3" in demo.output()
        names = {a["labels"]["alertname"] for a in get(f"{url}/api/v1/alerts").json()["alerts"]}
        assert "GpuXidFatal" in names
        page = get(f"{url}/").text
        assert 'class="alerts"' in page and "reported fatal XID 79" in page
        # the benchmark request ran on both nodes (this one's CPU, the faulty node's 8 simulated
        # H100s): the faulty node's GPU 6 copies at 0.82 x the 7 others, a fleet outlier
        wait_for(lambda: "the benchmark request ended" in demo.output(), 90, "the benchmarks")
        fleet = get(f"{url}/api/v1/bench/fleet?outliers=true").json()
        assert {(g["node"], g["gpu_index"], g["test"]) for g in fleet["gpus"]} == {
            ("demo-gpu-node", 6, "memory_copy")
        }, demo.output()[-4000:]
        assert demo.stop(signal.SIGINT, timeout=40) == 0
    assert "Traceback" not in demo.output()


def test_the_faults_scenario_freezes_its_node_for_the_silence(tmp_path: Path) -> None:
    port = free_port()
    with _demo(tmp_path, port, "--scenario", "faults", "--faults-skip", "715") as demo:
        _started(demo, f"http://127.0.0.1:{port}")
        wait_for(lambda: "demo-gpu-node goes silent" in demo.output(), 30, "the silence")
        (faulty,) = [
            pid for pid, cmdline in _children(demo.popen.pid).items() if "demo-gpu-node" in cmdline
        ]
        state = Path(f"/proc/{faulty}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "T", state  # stopped, as a hung node
        assert demo.stop(signal.SIGINT, timeout=40) == 0  # a frozen agent still stops
        assert not _alive(faulty)
