"""Agent overhead beside node_exporter: CPU % of one core, resident memory, samples per second.

Three real processes run side by side on 127.0.0.1, fresh for every run:

- a ``dcmon server`` (SQLite in a temporary folder) that the agent pushes to; its own CPU is
  not the agent's and is not counted;
- a ``dcmon agent`` at a 1 s interval with every default collector on this machine's real
  /proc and /sys, plus the GPU collector on 8 simulated H100s whose every NVML call takes the
  median time it took on a real H100 (latency replay), or the real driver with ``--backend nvml``;
- Debian's ``prometheus-node-exporter`` with its default collectors, scraped by this script at
  1 Hz over one keep-alive connection (the peer, with no GPU metrics).

After a warm-up, each run measures a window: CPU from ``/proc/<pid>/stat`` (user + system time of
all threads, plus any child processes) over the window's wall time; VmRSS and VmHWM from
``/proc/<pid>/status`` at the end; samples per second from the server's ingest counter
(``dcmon_server_ingest_samples_total``) for the agent, and sample lines per scrape times scrapes
per second for node_exporter. Medians over the runs are printed with the per-run figures, the
agent/node_exporter ratios and the targets (agent <= 0.5 % of one core, <= 40 MiB RSS).

    .venv/bin/python bench/agent_overhead.py                          # 3 runs x 60 s
    .venv/bin/python bench/agent_overhead.py --runs 3 --seconds 30    # shorter
    .venv/bin/python bench/agent_overhead.py --backend nvml           # on a GPU node
    .venv/bin/python bench/agent_overhead.py --no-call-latency        # simulated GPUs, no replay
    .venv/bin/python bench/agent_overhead.py --smoke                  # CI: 4 s, fails on errors

Latency replay is asked for with ``DCMON_AGENT_GPU__SIMULATED_LATENCY=true``; an agent without
that setting refuses it, and the benchmark stops and says so.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DCMON = [sys.executable, "-m", "agent"]
NODE_EXPORTER_CANDIDATES = ("prometheus-node-exporter", "node_exporter")
LATENCY_ENV = "DCMON_AGENT_GPU__SIMULATED_LATENCY"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TARGET_CPU_PERCENT = 0.5
TARGET_RSS_MIB = 40.0
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
_INGEST_SAMPLES = re.compile(r"^dcmon_server_ingest_samples_total (\S+)$", re.MULTILINE)
_INGEST_OK = re.compile(r'^dcmon_server_ingest_requests_total\{code="200"\} (\S+)$', re.MULTILINE)
_GPU_LABEL = re.compile(r'^DCGM_FI_DEV_GPU_UTIL\{[^}]*\bgpu="(\d+)"', re.MULTILINE)


class BenchError(Exception):
    """The benchmark cannot run as asked; the message says why and what to do."""


# --- smoke runs -----------------------------------------------------------------------------


def peer_required() -> bool:
    """Returns: whether a missing peer fails a smoke run (CI sets DCMON_REQUIRE_INTEGRATION=1,
    as for the tests, so a benchmark cannot pass CI by skipping its comparison)."""
    return os.environ.get("DCMON_REQUIRE_INTEGRATION", "") == "1"


def smoke_verdict(script: str, problems: list[str]) -> int:
    """Print a smoke run's verdict; returns: the exit status (0 only without problems).

    A smoke run is the benchmark's own code path at tiny sizes: its figures mean nothing, but
    anything that failed (a refused request, a lost sample, a missing peer) fails the run.
    """
    if not problems:
        print(f"{script} smoke: OK")
        return 0
    print(f"{script} smoke: FAILED", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


# --- /proc ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """Returns: user + system CPU seconds of ``pid`` (all threads), its reaped children and its
    live descendants."""
    total = 0.0
    for index, process in enumerate([pid, *descendants(pid)]):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # a descendant that has just exited
        # After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
        utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
        total += utime + stime + (cutime + cstime if index == 0 else 0)
    return total / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """Returns: the live descendants of ``pid`` (children of every thread, recursively)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(child) for child in children.read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            pending.extend(kids)
    return found


def memory_mib(pid: int) -> tuple[float, float]:
    """Returns: (VmRSS, VmHWM) of ``pid`` in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


# --- processes ------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self, tail: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-tail:]

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise BenchError(
                f"the {self.name} exited with status {self.popen.returncode}; its log:\n"
                + self.output()
            )


@contextmanager
def started(
    name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[Child]:
    """Start ``argv``; on leaving, SIGTERM it (SIGKILL if it does not stop) and reap it."""
    with log.open("wb") as sink:
        popen = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        yield Child(name, popen, log)
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(
    port: int, path: str, timeout: float = 5.0, token: str | None = None
) -> tuple[int, str]:
    """Returns: (status, body) of ``GET path``, with ``token`` as the bearer credential if given.

    A dcmon server closes its reads (API, /metrics) to callers without a read token, and the
    benchmarks measure that real configuration rather than one with open reads.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def wait_until(what: str, child: Child, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}; log:\n{child.output()}")


class Scraper:
    """Scrapes node_exporter at a fixed rate over one keep-alive connection, on a thread."""

    def __init__(self, port: int, interval_seconds: float) -> None:
        self._port = port
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)
        self._connection: http.client.HTTPConnection | None = None
        self.scrapes: list[tuple[float, int]] = []  # (monotonic time, sample lines)
        self.failures = 0

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._connection is not None:
            self._connection.close()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.scrapes.append((time.monotonic(), self._scrape()))
            except (OSError, http.client.HTTPException):
                self.failures += 1
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None
            next_at += self._interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _scrape(self) -> int:
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)
        self._connection.request("GET", "/metrics")
        response = self._connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise http.client.HTTPException(f"node_exporter answered {response.status}")
        return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))

    def window(self, start: float, end: float) -> tuple[int, float]:
        """Returns: (scrapes, median sample lines per scrape) between two monotonic times."""
        inside = [lines for at, lines in self.scrapes if start <= at < end]
        return len(inside), statistics.median(inside) if inside else 0.0


# --- one run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    cpu_percent: float
    rss_mib: float
    hwm_mib: float
    samples_per_second: float


@dataclass(frozen=True)
class RunResult:
    agent: Figures
    peer: Figures | None
    batches_per_second: float
    gpus_seen: int
    scrape_failures: int


def new_token() -> tuple[str, str]:
    """Returns: (token, its SHA-256 hex), as ``dcmon token new`` makes them."""
    token = "dcm_" + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def server_counters(port: int, read_token: str) -> tuple[float, float, int]:
    """Returns: (samples ingested, batches accepted, distinct GPUs on /metrics) from the server."""
    status, text = http_get(port, "/metrics", token=read_token)
    if status != 200:
        raise BenchError(f"the server's /metrics answered {status}: {text[:200]}")
    samples = _INGEST_SAMPLES.search(text)
    batches = _INGEST_OK.search(text)
    return (
        float(samples.group(1)) if samples else 0.0,
        float(batches.group(1)) if batches else 0.0,
        len(set(_GPU_LABEL.findall(text))),
    )


def one_run(args: argparse.Namespace, node_exporter: str | None, scratch: Path) -> RunResult:
    token, digest = new_token()
    read_token, read_digest = new_token()
    token_file = scratch / "agent.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    config = scratch / "agent.toml"
    config.write_text("# empty on purpose: flags and environment carry the settings\n")
    server_port = free_port()
    server_argv = [
        *DCMON, "server", "--host", "127.0.0.1", "--port", str(server_port),
        "--data-dir", str(scratch / "server"),
        "--ingest-token-sha256", digest, "--read-token-sha256", read_digest,
    ]  # fmt: skip
    agent_argv = [
        *DCMON, "agent", "--config", str(config),
        "--server-url", f"http://127.0.0.1:{server_port}", "--token-file", str(token_file),
        "--state-dir", str(scratch / "agent"), "--interval", "1",
        "--gpu-backend", args.backend, "--simulated-gpus", str(args.gpus),
        "--log-level", "WARNING",
    ]  # fmt: skip
    agent_env = {k: v for k, v in os.environ.items() if not k.startswith("DCMON_AGENT_")}
    if args.backend == "simulated" and args.call_latency:
        agent_env[LATENCY_ENV] = "true"
    with ExitStack() as stack:
        server = stack.enter_context(started("server", server_argv, scratch / "server.log"))
        wait_until(
            "the server to be ready",
            server,
            lambda: http_get(server_port, "/readyz", 2.0)[0] == 200,
            READY_TIMEOUT_SECONDS,
        )
        agent = stack.enter_context(
            started("agent", agent_argv, scratch / "agent.log", env=agent_env)
        )
        peer: Child | None = None
        scraper: Scraper | None = None
        if node_exporter is not None:
            peer_port = free_port()
            peer = stack.enter_context(
                started(
                    "node_exporter",
                    [node_exporter, f"--web.listen-address=127.0.0.1:{peer_port}"],
                    scratch / "node_exporter.log",
                )
            )
            wait_until(
                "node_exporter to answer",
                peer,
                lambda: http_get(peer_port, "/metrics")[0] == 200,
                READY_TIMEOUT_SECONDS,
            )
            scraper = stack.enter_context(Scraper(peer_port, 1.0))
        try:
            wait_until(
                "the agent's first delivered batch",
                agent,
                lambda: server_counters(server_port, read_token)[0] > 0,
                READY_TIMEOUT_SECONDS,
            )
        except BenchError as exc:
            raise refusal_hint(exc, agent) from None
        time.sleep(args.warmup)
        agent.check_alive()

        samples_0, batches_0, _ = server_counters(server_port, read_token)
        start = time.monotonic()
        agent_cpu_0 = cpu_seconds(agent.pid)
        peer_cpu_0 = cpu_seconds(peer.pid) if peer else 0.0
        time.sleep(args.seconds)
        agent_cpu_1 = cpu_seconds(agent.pid)
        peer_cpu_1 = cpu_seconds(peer.pid) if peer else 0.0
        end = time.monotonic()
        agent_rss, agent_hwm = memory_mib(agent.pid)
        peer_memory = memory_mib(peer.pid) if peer else (0.0, 0.0)
        samples_1, batches_1, gpus_seen = server_counters(server_port, read_token)
        agent.check_alive()
        wall = end - start

        agent_figures = Figures(
            (agent_cpu_1 - agent_cpu_0) / wall * 100,
            agent_rss,
            agent_hwm,
            (samples_1 - samples_0) / wall,
        )
        peer_figures = None
        if peer is not None and scraper is not None:
            peer.check_alive()
            scrapes, lines = scraper.window(start, end)
            peer_figures = Figures(
                (peer_cpu_1 - peer_cpu_0) / wall * 100, *peer_memory, lines * scrapes / wall
            )
        return RunResult(
            agent_figures,
            peer_figures,
            (batches_1 - batches_0) / wall,
            gpus_seen,
            scraper.failures if scraper else 0,
        )


def smoke_problems(
    args: argparse.Namespace, results: list[RunResult], peer_name: str | None
) -> list[str]:
    """Returns: what went wrong in a smoke run (empty when everything worked)."""
    problems: list[str] = []
    if peer_name is None and peer_required():
        problems.append("prometheus-node-exporter is missing (DCMON_REQUIRE_INTEGRATION=1)")
    for number, result in enumerate(results, 1):
        if result.agent.samples_per_second <= 0 or result.batches_per_second <= 0:
            problems.append(f"run {number}: the server stored nothing from the agent")
        if args.backend == "simulated" and result.gpus_seen != args.gpus:
            problems.append(
                f"run {number}: {result.gpus_seen} GPUs on the server's /metrics, not {args.gpus}"
            )
        if result.agent.cpu_percent <= 0 or result.agent.hwm_mib <= 0:
            problems.append(f"run {number}: no CPU or memory figure for the agent")
        if peer_name is not None:
            if result.peer is None or result.peer.samples_per_second <= 0:
                problems.append(f"run {number}: no samples scraped from node_exporter")
            if result.scrape_failures:
                problems.append(f"run {number}: {result.scrape_failures} scrapes failed")
    return problems


def refusal_hint(exc: BenchError, agent: Child) -> BenchError:
    """Returns: the error, explained when the agent refused the latency-replay setting."""
    log = agent.output()
    if "simulated_latency" in log:
        return BenchError(
            "the agent refused gpu.simulated_latency (set through "
            f"{LATENCY_ENV}=true): this dcmon has no latency-replay setting for the "
            "simulated backend yet. Run with --no-call-latency to measure without replay.\n"
            "The agent said:\n" + log
        )
    return exc


# --- checks and report ----------------------------------------------------------------------


def find_node_exporter(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    for candidate in NODE_EXPORTER_CANDIDATES:
        path = shutil.which(candidate) or shutil.which(candidate, path="/usr/bin:/usr/sbin")
        if path:
            return path
    return None


def check_nvml() -> str:
    """Returns: a description of the driver; raises BenchError when there is none."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as exc:
        raise BenchError(
            "--backend nvml needs an NVIDIA driver, and this machine has none "
            f"(libnvidia-ml.so.1 cannot be loaded: {exc}). Run it on a GPU node, or use "
            "the default simulated backend."
        ) from None
    version = Path("/proc/driver/nvidia/version")
    return version.read_text().splitlines()[0] if version.exists() else "NVIDIA driver"


def first_line(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown CPU"


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def report(args: argparse.Namespace, results: list[RunResult], peer_name: str | None) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    agent = [r.agent for r in results]
    peers = [r.peer for r in results if r.peer is not None]

    def row(label: str, unit: str, key: str, fmt: str) -> None:
        agent_values = [getattr(f, key) for f in agent]
        line = f"  {label:<22}{med(agent_values):>10{fmt}} {unit:<6}"
        if peers:
            peer_values = [getattr(f, key) for f in peers]
            peer_median = med(peer_values)
            ratio = med(agent_values) / peer_median if peer_median else float("nan")
            line += f"{peer_median:>14{fmt}} {unit:<6}{ratio:>8.2f}x"
        print(line)
        runs = ", ".join(f"{v:{fmt}}" for v in agent_values)
        print(f"  {'':<22}  agent runs: {runs}")
        if peers:
            print(f"  {'':<22}  peer runs:  {', '.join(f'{v:{fmt}}' for v in peer_values)}")

    print()
    header = f"  {'':<22}{'dcmon agent':>17}"
    if peers:
        header += f"{'node_exporter':>21}{'ratio':>8}"
    print(header)
    row("CPU of one core", "%", "cpu_percent", ".3f")
    row("RSS at the end", "MiB", "rss_mib", ".1f")
    row("peak RSS (VmHWM)", "MiB", "hwm_mib", ".1f")
    row("samples per second", "/s", "samples_per_second", ".0f")
    cpu = med([f.cpu_percent for f in agent])
    hwm = med([f.hwm_mib for f in agent])
    sps = med([f.samples_per_second for f in agent])
    agent_us = cpu / 100 / sps * 1e6 if sps else float("nan")
    line = f"  {'CPU per sample':<22}{agent_us:>10.1f} {'us':<6}"
    if peers:
        peer_cpu = med([f.cpu_percent for f in peers])
        peer_sps = med([f.samples_per_second for f in peers])
        peer_us = peer_cpu / 100 / peer_sps * 1e6 if peer_sps else float("nan")
        line += f"{peer_us:>14.1f} {'us':<6}{agent_us / peer_us:>8.2f}x"
    print(line)
    batches = med([r.batches_per_second for r in results])
    gpus = min(r.gpus_seen for r in results)
    print(f"  agent batches per second {batches:.2f}; GPUs on the server's /metrics: {gpus}")
    failures = sum(r.scrape_failures for r in results)
    if failures:
        print(f"  node_exporter scrape failures: {failures}")
    print()
    print("targets for the agent (medians):")
    cpu_verdict = verdict(cpu, TARGET_CPU_PERCENT)
    rss_verdict = verdict(hwm, TARGET_RSS_MIB)
    print(f"  CPU <= {TARGET_CPU_PERCENT} % of one core: {cpu:.3f} %  {cpu_verdict}")
    print(f"  RSS <= {TARGET_RSS_MIB:.0f} MiB (peak, VmHWM): {hwm:.1f} MiB  {rss_verdict}")
    if peer_name is None:
        print("(no node_exporter here: the peer was skipped)")
    print()
    command = [
        ".venv/bin/python", "bench/agent_overhead.py", "--runs", str(args.runs),
        "--seconds", f"{args.seconds:g}", "--warmup", f"{args.warmup:g}",
        "--backend", args.backend,
    ]  # fmt: skip
    if args.backend == "simulated":
        command += ["--gpus", str(args.gpus)]
        if not args.call_latency:
            command.append("--no-call-latency")
    if args.smoke:
        command = [".venv/bin/python", "bench/agent_overhead.py", "--smoke"]
    print("reproduce: " + " ".join(command))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes each (default 3)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window (default 60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before it (default 10)")
    parser.add_argument("--backend", choices=["simulated", "nvml"], default="simulated")
    parser.add_argument("--gpus", type=int, default=8, help="simulated GPUs (default 8)")
    parser.add_argument(
        "--no-call-latency",
        dest="call_latency",
        action="store_false",
        help="simulated GPUs answer at once instead of replaying the H100's call latencies",
    )
    parser.add_argument("--node-exporter", help="node_exporter binary (default: found on PATH)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds, same code path: exits non-zero if anything failed (CI)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.seconds, args.warmup = 1, 3.0, 1.0
    if args.runs < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--runs must be >= 1, --seconds > 0 and --warmup >= 0")
    try:
        if args.backend == "nvml":
            gpus = f"the real GPUs ({check_nvml()})"
        else:
            replay = (
                "replaying per-call latencies of a real H100"
                if args.call_latency
                else ("answering at once (no latency replay)")
            )
            gpus = f"{args.gpus} simulated H100s {replay}"
        node_exporter = find_node_exporter(args.node_exporter)
        peer_name = first_line([node_exporter, "--version"]) if node_exporter else None
        print(f"agent overhead benchmark on {os.cpu_count()} x {cpu_model()}")
        print(f"  dcmon agent: 1 s interval, real host + {gpus}")
        if peer_name:
            print(f"  peer: {peer_name}, default collectors, scraped at 1 Hz")
        else:
            print(
                "  peer: skipped: prometheus-node-exporter is not installed "
                "(Debian: apt-get install prometheus-node-exporter)"
            )
        print(
            f"  {args.runs} run(s), fresh processes each: {args.warmup:g} s warm-up, "
            f"{args.seconds:g} s measured"
        )
        results = []
        for number in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory(prefix="dcmon-bench-") as scratch:
                result = one_run(args, node_exporter, Path(scratch))
            results.append(result)
            peer = result.peer
            print(
                f"  run {number}: agent {result.agent.cpu_percent:.3f} % CPU, "
                f"{result.agent.hwm_mib:.1f} MiB peak RSS, "
                f"{result.agent.samples_per_second:.0f} samples/s"
                + (
                    f"; node_exporter {peer.cpu_percent:.3f} % CPU, {peer.hwm_mib:.1f} MiB "
                    f"peak RSS, {peer.samples_per_second:.0f} samples/s"
                    if peer
                    else ""
                ),
                flush=True,
            )
    except BenchError as exc:
        print(f"agent_overhead: {exc}", file=sys.stderr)
        return 2
    report(args, results, peer_name)
    if args.smoke:
        return smoke_verdict("agent_overhead", smoke_problems(args, results, peer_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
