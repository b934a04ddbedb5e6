"""A real, throwaway PostgreSQL for tests: one cluster in a temp dir on 127.0.0.1:<free port>.

``PostgresServer`` drives Debian's (or PATH's) ``initdb``/``pg_ctl``; the pytest part on top
gives a session-wide ``postgres_server`` and a fresh database per test (``postgres_url``).
initdb and postgres refuse to run as root, so when the tests run as root (CI, this machine)
the cluster belongs to the ``postgres`` system user and every command goes through
``runuser -u postgres --``. Without PostgreSQL the fixtures skip with the reason; with
DCMON_REQUIRE_INTEGRATION=1 they fail instead (see tests/integration.py).
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

from tests.integration import free_port, integration_required

SUPERUSER = "dcmon"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
_RUN_AS = "postgres"  # the system user Debian's package creates
_LOG_TAIL_LINES = 40


class PostgresError(RuntimeError):
    """initdb, pg_ctl or the server failed; the message carries the server log's tail."""


def postgres_binaries() -> Path | None:
    """Returns: the bin directory of the newest installed PostgreSQL, or None.

    Debian installs each major version under /usr/lib/postgresql/<major>/bin, off PATH;
    elsewhere initdb and pg_ctl are usually on PATH.
    """
    candidates = sorted(
        (
            path
            for path in Path("/usr/lib/postgresql").glob("*/bin")
            if path.parent.name.isdigit() and _has_tools(path)
        ),
        key=lambda path: int(path.parent.name),
    )
    if candidates:
        return candidates[-1]
    initdb = shutil.which("initdb")
    if initdb and _has_tools(Path(initdb).parent):
        return Path(initdb).parent
    return None


def _has_tools(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl"))


def _run_as_prefix() -> list[str]:
    """Returns: the argv prefix that runs initdb/pg_ctl as a non-root user ([] when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(_RUN_AS)
    except KeyError:
        raise PostgresError(
            f"running as root and there is no {_RUN_AS!r} user to run PostgreSQL as"
        ) from None
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", _RUN_AS, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={_RUN_AS}", f"--regid={_RUN_AS}", "--init-groups", "--"]
    raise PostgresError("running as root and neither runuser nor setpriv is installed")


class PostgresServer:
    """One throwaway PostgreSQL cluster kept in ``base_dir``.

    Layout: ``data/`` (the cluster, mode 0700), ``socket/`` (the unix socket), ``postgres.log``.
    It listens on TCP 127.0.0.1 only, on a port picked at the first ``start()`` and kept across
    restarts; pg_hba trusts local connections (initdb's defaults cover only the unix socket and
    loopback). ``base_dir`` and its parents must be traversable by the server's user.
    """

    def __init__(self, bin_dir: Path, base_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "socket"
        self.log_file = base_dir / "postgres.log"
        self.user = SUPERUSER
        self.port: int | None = None
        self._prefix = _run_as_prefix()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the cluster on first use, then start it and wait (bounded) until it accepts."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.port is None:
            self.port = free_port()
        options = " ".join(
            shlex.quote(option)
            for option in (
                "-c", "listen_addresses=127.0.0.1",
                "-p", str(self.port),
                "-c", f"unix_socket_directories={self.socket_dir}",
                "-c", "shared_buffers=16MB",
            )
        )  # fmt: skip
        self._run(
            "start",
            [self._tool("pg_ctl"), "start", "-w", "-t", str(START_TIMEOUT_S),
             "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options],
            timeout=START_TIMEOUT_S + 10,
        )  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions, closes sessions); a no-op when stopped."""
        if not self.running():
            return
        self._run(
            "stop",
            [self._tool("pg_ctl"), "stop", "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_S),
             "-D", str(self.data_dir)],
            timeout=STOP_TIMEOUT_S + 10,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; ``start()`` then runs crash recovery.

        Waits until the postmaster and its backends are gone so that the restart does not
        race them for the shared memory segment.
        """
        pid = self._postmaster_pid()
        if pid is None or not _alive(pid):
            raise PostgresError(f"kill: the server is not running{self._log_tail()}")
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        _wait_gone([pid], timeout=10.0)
        # Backends notice the postmaster's death and exit on their own; stragglers get SIGKILL.
        if not _wait_gone(children, timeout=10.0):
            for child in children:
                if _alive(child):
                    os.kill(child, signal.SIGKILL)
            _wait_gone(children, timeout=10.0)
        # Everything is gone, so the lock files are stale. postgres would clear them itself
        # unless their PID still answers kill(pid, 0): an unreaped zombie postmaster (a
        # container's PID 1 may not reap orphans) or a reused PID. Clear them for it.
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        for lock in self.socket_dir.glob(".s.PGSQL.*"):
            lock.unlink(missing_ok=True)

    def running(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and _alive(pid)

    # -- databases ---------------------------------------------------------------------------

    def url(self, database: str) -> str:
        """Returns: the SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self._port()}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns: its SQLAlchemy URL."""
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting anyone still connected to it; a no-op when absent."""
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(
            host="127.0.0.1",
            port=self._port(),
            user=self.user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as connection:
            connection.execute(statement)

    # -- internals ---------------------------------------------------------------------------

    def _initdb(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._prefix:
            entry = pwd.getpwnam(_RUN_AS)
            for path in (self.base_dir, *self.base_dir.rglob("*")):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            _check_traversable(self.base_dir, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            [self._tool("initdb"), "-D", str(self.data_dir), "-U", self.user, "-A", "trust",
             "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"],
            timeout=120,
        )  # fmt: skip

    def _run(self, what: str, argv: list[str], timeout: float) -> None:
        try:
            completed = subprocess.run(
                [*self._prefix, *argv],
                cwd=self.base_dir,  # the server's user may not be able to enter ours
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"{what} timed out after {timeout}s{self._log_tail()}") from exc
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr).decode(errors="replace").strip()
            raise PostgresError(
                f"{what} exited {completed.returncode}: {shlex.join(argv)}\n{output}"
                f"{self._log_tail()}"
            )

    def _tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _port(self) -> int:
        if self.port is None:
            raise PostgresError("the server has not been started")
        return self.port

    def _postmaster_pid(self) -> int | None:
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
        except (FileNotFoundError, IndexError):
            return None
        return int(first_line) if first_line.strip().isdigit() else None

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"\n(no server log at {self.log_file})"
        tail = "\n".join(lines[-_LOG_TAIL_LINES:])
        return f"\n--- last lines of {self.log_file} ---\n{tail}"


def _check_traversable(path: Path, uid: int, gid: int) -> None:
    """Raise when a parent of ``path`` is closed to the user the server runs as."""
    for parent in path.resolve().parents:
        info = parent.stat()
        if info.st_uid == uid:
            ok = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid == gid:
            ok = bool(info.st_mode & stat.S_IXGRP)
        else:
            ok = bool(info.st_mode & stat.S_IXOTH)
        if not ok:
            raise PostgresError(
                f"{parent} is not traversable by {_RUN_AS!r} (mode {stat.filemode(info.st_mode)}); "
                "put the cluster under a directory it can enter, such as the system temp dir"
            )


def _proc_state(pid: int) -> str | None:
    """Returns: the process state letter from /proc/<pid>/stat, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    return _proc_state(pid) not in (None, "Z", "X")


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def _wait_gone(pids: list[int], timeout: float) -> bool:
    """Returns: whether all ``pids`` exited (or became zombies) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- pytest ----------------------------------------------------------------------------------


def _new_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh directory the server's user can enter.

    pytest's base temp dir is private to the current user (0700), so a server run as
    ``postgres`` gets a directory in the system temp dir instead (world-traversable /tmp).
    """
    if os.geteuid() == 0:
        base = Path(tempfile.mkdtemp(prefix="dcmon-postgres-"))
        base.chmod(0o711)
        return base
    return Path(tempfile.mkdtemp(prefix="postgres-", dir=tmp_path_factory.getbasetemp()))


def _unavailable(reason: str) -> NoReturn:
    if integration_required():
        pytest.fail(f"{reason}, and DCMON_REQUIRE_INTEGRATION=1")
    pytest.skip(reason)


def start_or_skip(tmp_path_factory: pytest.TempPathFactory) -> PostgresServer:
    """Returns: a started server of its own; the caller ends it with ``discard()``.

    Skips when PostgreSQL is not installed (or cannot run here); fails instead when
    DCMON_REQUIRE_INTEGRATION=1. An installed PostgreSQL that fails to start always fails.
    """
    bin_dir = postgres_binaries()
    if bin_dir is None:
        _unavailable(
            "PostgreSQL is not installed: no initdb/pg_ctl under /usr/lib/postgresql/*/bin "
            "or on PATH (Debian: apt-get install postgresql, see .ci/run)"
        )
    base_dir = _new_base_dir(tmp_path_factory)
    try:
        server = PostgresServer(bin_dir, base_dir)
    except PostgresError as exc:
        shutil.rmtree(base_dir, ignore_errors=True)
        _unavailable(f"PostgreSQL cannot run here: {exc}")
    try:
        server.start()
    except PostgresError as exc:
        discard(server)
        pytest.fail(f"PostgreSQL is installed but did not start: {exc}")
    return server


def discard(server: PostgresServer) -> None:
    """Stop ``server`` and delete its directory."""
    try:
        server.stop()
    finally:
        shutil.rmtree(server.base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A started PostgreSQL shared by the session; stopped and deleted at its end."""
    server = start_or_skip(tmp_path_factory)
    try:
        yield server
    finally:
        discard(server)


_NOT_IDENTIFIER = re.compile(r"[^a-z0-9_]+")


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh database for this test, dropped afterwards."""
    test_name = _NOT_IDENTIFIER.sub("_", request.node.name.lower()).strip("_")[:40]
    name = f"dcmon_{test_name}_{uuid.uuid4().hex[:8]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
