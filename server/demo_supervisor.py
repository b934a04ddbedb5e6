"""The demo's supervisor: keep a server and an agent process running until asked to stop.

Input: the two command lines and the server's readiness URL. The server starts first and must
become ready once (a server that cannot start at all is an error, not a restart loop); then the
agent starts. A child that exits is restarted after a backoff (1 s doubling to 30 s, reset once
it has run for a minute), the other one is left alone: the agent spools while the server is
away and delivers when it is back.

More children may be supervised alike (``Extra``: the faults scenario's webhook receiver and
its simulated GPU node), started after the server, and an extra child may be frozen
(SIGSTOP) over windows of time and thawed (SIGCONT) after each: a node that hangs and comes
back, as the scenario's "node goes silent". A ``once`` child is a task that ends (the demo's
benchmark request): its exit is reported and it is not restarted.

SIGINT, SIGTERM and SIGHUP stop the agents first (so they deliver their last batch), then the
other children and the server. The children run in their own sessions, so a Ctrl-C in the
terminal reaches only the demo, which stops them in that order; and each child is told by the
kernel to terminate should the demo itself die without stopping them (Linux
``PR_SET_PDEATHSIG``), so nothing is orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.2
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def say(text: str) -> None:
    """Print for the person at the terminal; a terminal that is gone (SIGHUP) is not an error."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


@dataclass(frozen=True)
class Extra:
    """A further child: its name, command line, whether it is an agent (stopped first) and
    the windows (seconds after the supervisor starts) it is frozen for."""

    name: str
    argv: list[str]
    agent: bool = False
    frozen: tuple[tuple[float, float], ...] = ()
    once: bool = False  # a task that ends (the demo's benchmark request): never restarted


@dataclass
class Child:
    """One supervised process and its restart state."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    frozen: tuple[tuple[float, float], ...] = ()  # windows, seconds after the supervisor began
    is_frozen: bool = False
    once: bool = False
    ended: bool = False  # a ``once`` child that has exited

    def start(self, now: float) -> None:
        self.popen = subprocess.Popen(  # noqa: S603 (our own argv)
            self.argv,
            start_new_session=True,
            preexec_fn=_terminate_with_parent,  # noqa: PLW1509 (the demo runs no threads)
        )
        self.started_at = now
        self.restart_at = None

    def exited(self) -> int | None:
        """Returns: the exit status if the process has ended and no restart is scheduled."""
        if self.popen is None or self.restart_at is not None or self.ended:
            return None
        return self.popen.poll()

    def schedule_restart(self, now: float) -> float:
        """Returns: the delay before the restart (backoff over quick successive exits)."""
        if now - self.started_at >= STABLE_AFTER_SECONDS:
            self.failures = 0
        delay = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2.0**self.failures)
        self.failures += 1
        self.restart_at = now + delay
        return delay

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP (``frozen``) or SIGCONT the process."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)
        self.is_frozen = frozen

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        if self.is_frozen:
            self.freeze(False)  # a stopped process acts on SIGTERM only once continued
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@dataclass
class Supervisor:
    """Runs the server and the agent; ``run`` returns the demo's exit status."""

    server_argv: list[str]
    agent_argv: list[str]
    ready_url: str
    clock: Callable[[], float] = time.monotonic
    extras: tuple[Extra, ...] = ()
    _stop_signal: int | None = field(default=None, init=False)
    _began: float = field(default=0.0, init=False)

    def run(self, started: Callable[[], None]) -> int:
        """Start both, call ``started`` once the server is ready, supervise until a stop signal.

        Returns: 0 when stopped by a signal; 1 when the server never became ready.
        """
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, self._request_stop)
        self._began = self.clock()
        server = Child("server", self.server_argv)
        agents = [Child("agent", self.agent_argv)]
        others: list[Child] = []
        for extra in self.extras:
            (agents if extra.agent else others).append(
                Child(extra.name, extra.argv, frozen=extra.frozen, once=extra.once)
            )
        try:
            server.start(self.clock())
            if not self._wait_ready(server):
                if self._stop_signal is not None:
                    return 0
                print("dcmon demo: the server did not become ready", file=sys.stderr)
                return 1
            for child in (*others, *agents):
                child.start(self.clock())
            started()
            while self._stop_signal is None:
                self._supervise(server, [*others, *agents])
                time.sleep(POLL_SECONDS)
            say(f"\n{signal.Signals(self._stop_signal).name}: stopping the agent and the server")
            return 0
        finally:
            for child in (*agents, *others, server):
                child.stop()

    def _supervise(self, server: Child, children: list[Child]) -> None:
        now = self.clock()
        for child in children:
            self._thaw_or_freeze(child, now - self._began)
        for child in (server, *children):
            status = child.exited()
            if status is not None and child.once:
                child.ended = True
                say(f"dcmon demo: the {child.name} ended ({_describe(status)})")
            elif status is not None:
                delay = child.schedule_restart(now)
                meanwhile = (
                    "; the agent keeps collecting and spools its batches meanwhile"
                    if child is server
                    else ""
                )
                say(
                    f"dcmon demo: the {child.name} exited ({_describe(status)}); "
                    f"restarting it in {delay:g}s{meanwhile}"
                )
            elif child.restart_at is not None and now >= child.restart_at:
                child.start(now)
                assert child.popen is not None
                say(f"dcmon demo: restarted the {child.name} (PID {child.popen.pid})")

    def _thaw_or_freeze(self, child: Child, elapsed: float) -> None:
        frozen = any(start <= elapsed < end for start, end in child.frozen)
        if frozen == child.is_frozen:
            return
        child.freeze(frozen)
        if frozen:
            say(f"dcmon demo: {child.name} goes silent (process frozen with SIGSTOP)")
        else:
            say(f"dcmon demo: {child.name} is back (SIGCONT)")

    def _wait_ready(self, server: Child) -> bool:
        deadline = self.clock() + READY_TIMEOUT_SECONDS
        while self.clock() < deadline and self._stop_signal is None:
            if server.exited() is not None:
                return False
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(POLL_SECONDS)
        return False

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_signal is None:
            self._stop_signal = signum


def _describe(status: int) -> str:
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"exit code {status}"


def _terminate_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the demo dies."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
