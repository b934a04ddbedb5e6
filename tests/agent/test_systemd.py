"""sd_notify over a real datagram socket, as systemd would receive it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    try:
        yield sock, path
    finally:
        sock.close()


def test_messages_reach_the_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier.from_environment(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert notifier.watchdog_seconds == 20.0
    notifier.ready("collecting every 10s")
    notifier.watchdog()
    notifier.stopping()
    assert sock.recv(256) == b"READY=1\nSTATUS=collecting every 10s"
    assert sock.recv(256) == b"WATCHDOG=1"
    assert sock.recv(256) == b"STOPPING=1"


def test_watchdog_for_another_pid_is_ignored() -> None:
    notifier = Notifier.from_environment(
        {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    )
    assert notifier.watchdog_seconds is None


def test_without_systemd_nothing_is_sent() -> None:
    notifier = Notifier.from_environment({})
    notifier.ready()
    notifier.watchdog()
    assert notifier.watchdog_seconds is None


def test_unreachable_socket_warns_once(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "absent"), None)
    notifier.ready()
    notifier.stopping()
    assert caplog.text.count("cannot notify systemd") == 1
