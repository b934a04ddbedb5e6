"""systemd service manners: READY, WATCHDOG and STOPPING over $NOTIFY_SOCKET (sd_notify(3)).

Without $NOTIFY_SOCKET (not started by systemd) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

_log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages; knows the watchdog interval systemd expects."""

    def __init__(self, address: str | None, watchdog_seconds: float | None) -> None:
        self._address = address
        self.watchdog_seconds = watchdog_seconds
        self._failed = False

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Notifier:
        env = dict(os.environ if environ is None else environ)
        address = env.get("NOTIFY_SOCKET") or None
        watchdog: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and usec.isdigit() and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1e6
        return cls(address, watchdog)

    def ready(self, status: str = "") -> None:
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        if self.watchdog_seconds is not None:
            self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        address = self._address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(address)
                sock.sendall(message.encode())
        except OSError as exc:
            if not self._failed:
                _log.warning("cannot notify systemd at %s: %s", self._address, exc)
                self._failed = True
