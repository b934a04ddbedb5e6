"""The ``Worker`` seam: where a benchmark run computes, and the events it sends back.

Stage: ``job`` -> ``Worker.start(request)`` -> ``WorkerRun`` -> ``stream`` events -> ``job``.
Two implementations:

- ``SubprocessWorker``: the real one, ``python -m agent.bench.worker`` (``worker.py``) in its
  own process group (a terminal's Ctrl-C reaches the CLI, which cancels, not the worker
  directly); its stdout is decoded by a reader thread, its stderr kept (last lines) for the
  message when it dies. ``stop`` sends SIGTERM, then SIGKILL after ``grace_s``.
- ``InProcessWorker``: the in-memory twin for tests: a given ``Backend`` object run by the
  harness on a thread; ``stop`` takes effect between tests (a thread cannot be killed).

Every run ends with exactly one ``Exited`` event. Reader threads never die silently: a failure
is logged and counted (``WorkerRun.errors``) and the run still ends with ``Exited``.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from agent.bench.backend import Backend, Device
from agent.bench.harness import BenchError, run
from agent.bench.result import BenchResult, RunResult
from agent.bench.stream import (
    Completed,
    Exited,
    Finished,
    Planned,
    Refused,
    Started,
    StreamError,
    WorkerEvent,
    decode,
)

_log = logging.getLogger(__name__)

TERM_GRACE_S = 5.0
STDERR_LINES = 20
EXIT_STOPPED = -int(signal.SIGTERM)  # what a stopped in-process run reports, as a killed one


@dataclass(frozen=True)
class WorkRequest:
    """What one worker runs: a level on some devices (None: all) with a backend by name."""

    level: str
    gpus: tuple[int, ...] | None = None
    duration_s: float | None = None
    backend: str = "auto"


class WorkerRun(Protocol):
    """One started run."""

    @property
    def pid(self) -> int | None:
        """Returns: the worker's process id (None in-process)."""
        ...

    @property
    def errors(self) -> int:
        """Returns: failures of the run's own threads (bad lines, a reader that broke)."""
        ...

    def next(self, timeout_s: float) -> WorkerEvent | None:
        """Returns: the next event, or None when none came within ``timeout_s``."""
        ...

    def stop(self) -> None:
        """End the run now (idempotent); its ``Exited`` event still follows."""
        ...

    def close(self) -> None:
        """Release what the run holds; the worker is gone afterwards."""
        ...


class Worker(Protocol):
    def start(self, request: WorkRequest) -> WorkerRun:
        """Start ``request``; its events follow on the returned run."""
        ...


class SubprocessWorker:
    """Runs requests in ``python -m agent.bench.worker`` processes.

    Args:
        python: the interpreter to run the worker with.
        grace_s: how long ``stop`` waits after SIGTERM before SIGKILL.
        scenario: run the scripted backend from this scenario file instead of the request's
            backend (tests of the real process).
        env: the worker's environment (default: this process's).
    """

    def __init__(
        self,
        *,
        python: str = sys.executable,
        grace_s: float = TERM_GRACE_S,
        scenario: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._python = python
        self._grace_s = grace_s
        self._scenario = scenario
        self._env = env

    def command(self, request: WorkRequest) -> list[str]:
        """Returns: the worker's command line for ``request``."""
        argv = [self._python, "-m", "agent.bench.worker", "--level", request.level]
        if request.gpus is not None:
            argv += ["--gpus", ",".join(str(i) for i in request.gpus)]
        if request.duration_s is not None:
            argv += ["--duration", repr(request.duration_s)]
        if self._scenario is not None:
            argv += ["--backend", "scripted", "--script", str(self._scenario)]
        else:
            argv += ["--backend", request.backend]
        return [*argv, "--parent-pid", str(os.getpid())]

    def start(self, request: WorkRequest) -> WorkerRun:
        env = dict(os.environ if self._env is None else self._env)
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA numbers GPUs as NVML does
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            self.command(request),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            process_group=0,
        )
        return _ProcessRun(process, self._grace_s)


class _ProcessRun:
    def __init__(self, process: subprocess.Popen[str], grace_s: float) -> None:
        self._process = process
        self._grace_s = grace_s
        self._events: queue.Queue[WorkerEvent] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._errors = 0
        self._lock = threading.Lock()
        self._stderr_thread = threading.Thread(
            target=self._read_stderr, name="dcmon-bench-stderr", daemon=True
        )
        self._stdout_thread = threading.Thread(
            target=self._read_stdout, name="dcmon-bench-stdout", daemon=True
        )
        self._stderr_thread.start()
        self._stdout_thread.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def errors(self) -> int:
        with self._lock:
            return self._errors

    def next(self, timeout_s: float) -> WorkerEvent | None:
        try:
            return self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def stop(self) -> None:
        process = self._process
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(self._grace_s)
        except subprocess.TimeoutExpired:
            _log.warning("bench worker %d ignored SIGTERM for %g s: killed", process.pid,
                         self._grace_s)  # fmt: skip
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        self._stdout_thread.join(self._grace_s)
        self._stderr_thread.join(self._grace_s)
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()

    def _read_stdout(self) -> None:
        """Decode the stream until it ends, then report the exit (always, even on failure)."""
        lost = ""
        try:
            out = self._process.stdout
            assert out is not None
            for line in out:
                if not line.strip():
                    continue
                try:
                    self._events.put(decode(line))
                except StreamError as exc:
                    _log.warning("%s", exc)
                    self._count()
        except Exception as exc:  # noqa: BLE001 (the reader's last resort: log, count, kill)
            _log.exception("bench worker output unreadable: worker killed")
            self._count()
            self._process.kill()
            lost = f"the worker's output could not be read ({type(exc).__name__}: {exc})"
        code = self._wait()
        self._stderr_thread.join(self._grace_s)
        self._events.put(Exited(code, lost or "\n".join(self._stderr)))

    def _read_stderr(self) -> None:
        try:
            err: IO[str] | None = self._process.stderr
            assert err is not None
            for line in err:
                text = line.rstrip()
                if text:
                    _log.debug("bench worker: %s", text)
                    self._stderr.append(text)
        except Exception:  # noqa: BLE001 (the reader's last resort: log, count)
            _log.exception("bench worker stderr unreadable")
            self._count()

    def _wait(self) -> int:
        return self._process.wait()

    def _count(self) -> None:
        with self._lock:
            self._errors += 1


class _Stopped(Exception):  # noqa: N818 (a signal between threads, not an error)
    pass


class InProcessWorker:
    """Runs requests with ``backend`` on a thread (the twin of ``SubprocessWorker``).

    The request's ``backend`` name is ignored: ``backend`` is what runs. ``clock`` and
    ``wall`` go to the harness (a scripted backend's ``ManualClock``, say).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        note: str = "",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._backend = backend
        self._note = note
        self._clock = clock
        self._wall = wall

    def start(self, request: WorkRequest) -> WorkerRun:
        def bench(listener: _ThreadRun) -> RunResult:
            return run(
                self._backend, request.level, devices=request.gpus, burn_s=request.duration_s,
                clock=self._clock, wall=self._wall, listener=listener, note=self._note,
            )  # fmt: skip

        return _ThreadRun(bench, self._backend.name, self._note)


class _ThreadRun:
    def __init__(self, bench: Callable[[_ThreadRun], RunResult], backend: str, note: str) -> None:
        self._bench = bench
        self._backend = backend
        self._note = note
        self._events: queue.Queue[WorkerEvent] = queue.Queue()
        self._stop = threading.Event()
        self._errors = 0
        self._thread = threading.Thread(target=self._main, name="dcmon-bench-inprocess")
        self._thread.start()

    @property
    def pid(self) -> int | None:
        return None

    @property
    def errors(self) -> int:
        return self._errors

    def next(self, timeout_s: float) -> WorkerEvent | None:
        try:
            return self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    # the harness's listener

    def planned(self, total: int, devices: Sequence[Device]) -> None:
        self._events.put(Planned(total, self._backend, self._note, tuple(devices)))

    def started(self, device: int, test: str) -> None:
        if self._stop.is_set():
            raise _Stopped
        self._events.put(Started(device, test))

    def finished(self, result: BenchResult) -> None:
        self._events.put(Finished(result))

    def _main(self) -> None:
        code, detail = 0, ""
        try:
            self._events.put(Completed(self._bench(self)))
        except BenchError as exc:
            self._events.put(Refused(str(exc)))
            code = 2
        except _Stopped:
            code, detail = EXIT_STOPPED, "stopped between tests"
        except Exception as exc:  # noqa: BLE001 (the run's last resort: log, count, report)
            _log.exception("in-process bench run failed")
            self._errors += 1
            code, detail = 1, f"{type(exc).__name__}: {exc}"
        self._events.put(Exited(code, detail))
