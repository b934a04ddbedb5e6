"""``dcmon demo``: a server (SQLite in a local folder) and an agent for this machine, one command.

Both run as real child processes, exactly as they would under systemd, talking over loopback
with a token made on first run. The server listens on 127.0.0.1 only and serves reads without a
token (``--open-reads``), so the dashboard opens in a browser as it is. Ctrl-C stops the agent
first (so its last batch is delivered), then the server. Without an NVIDIA driver the agent
shows simulated GPUs, and says so.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from server.auth.secrets import new_token, sha256_hex

DEFAULT_PORT = 8470
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcmon demo", description="Run a dcmon server and a local agent on this machine."
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="server port (default 8470)")
    p.add_argument(
        "--data-dir", type=Path, default=Path(".dcmon/demo"), help="default ./.dcmon/demo"
    )
    p.add_argument(
        "--gpus",
        choices=["auto", "real", "simulated", "none"],
        default="auto",
        help="auto: the real GPUs if an NVIDIA driver is loaded, else simulated ones",
    )
    p.add_argument("--simulated-gpus", type=int, default=4, help="how many (default 4)")
    p.add_argument("--interval", type=float, default=5.0, help="agent interval in seconds")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    token_file = data_dir / "agent.token"
    if not token_file.exists():
        token_file.write_text(new_token() + "\n", encoding="utf-8")
        token_file.chmod(0o600)
    token_hash = sha256_hex(token_file.read_text(encoding="utf-8").strip())
    port = args.port if _port_free(args.port) else _any_free_port()
    if port != args.port:
        print(f"port {args.port} is busy; using {port}")
    backend = _gpu_backend(args.gpus)
    base_url = f"http://127.0.0.1:{port}"
    python = [sys.executable, "-m", "agent"]
    server_cmd = [
        *python, "server", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir), "--ingest-token-sha256", token_hash, "--open-reads",
    ]  # fmt: skip
    agent_cmd = [
        *python, "agent", "--server-url", base_url, "--token-file", str(token_file),
        "--state-dir", str(data_dir / "agent"), "--interval", str(args.interval),
        "--gpu-backend", backend, "--simulated-gpus", str(args.simulated_gpus),
    ]  # fmt: skip
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        server = subprocess.Popen(server_cmd, start_new_session=True)  # noqa: S603 (our own argv)
        children.append(server)
        if not _wait_ready(base_url, server, lambda: stopping):
            if not stopping:
                print("dcmon demo: the server did not become ready", file=sys.stderr)
            return 0 if stopping else 1
        agent = subprocess.Popen(agent_cmd, start_new_session=True)  # noqa: S603 (our own argv)
        children.append(agent)
        _banner(base_url, data_dir, backend, args.simulated_gpus)
        while not stopping:
            for child, name in ((server, "server"), (agent, "agent")):
                if child.poll() is not None:
                    print(f"dcmon demo: the {name} exited ({child.returncode}); stopping")
                    return 1
            time.sleep(0.2)
        print("\nstopping the agent and the server ...")
        return 0
    finally:
        for child in reversed(children):
            _stop(child)


def _gpu_backend(choice: str) -> str:
    if choice == "real":
        return "nvml"
    if choice in ("simulated", "none"):
        return choice
    driver_loaded = Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()
    return "nvml" if driver_loaded else "simulated"


def _banner(base_url: str, data_dir: Path, backend: str, simulated: int) -> None:
    gpus = {
        "nvml": "this machine's NVIDIA GPUs",
        "simulated": f"{simulated} simulated GPUs (no NVIDIA driver here; --gpus none hides them)",
        "none": "no GPUs",
    }[backend]
    print(
        "\ndcmon demo is running: a server and an agent for this machine\n"
        f"  dashboard  {base_url}/\n"
        f"  metrics    {base_url}/metrics\n"
        f"  API docs   {base_url}/docs\n"
        f"  nodes API  {base_url}/api/v1/nodes\n"
        f"  GPUs       {gpus}\n"
        f"  data       {data_dir} (SQLite)\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def _wait_ready(
    base_url: str, server: subprocess.Popen[bytes], stopping: Callable[[], bool]
) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if stopping():
            return False
        if server.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
