"""The ``uname`` collector: ``node_uname_info`` = 1 labelled with the kernel's identity.

Labels as node_exporter's (``sysname``, ``release``, ``version``, ``machine``, ``nodename``,
``domainname``). They are read from ``/proc/sys/kernel`` (``ostype``, ``osrelease``, ``version``,
``arch``, ``hostname``, ``domainname``), which hold the same strings as ``uname(2)`` and can be
recorded for tests; a file that is missing (``arch`` is Linux >= 6.1) falls back to the injected
``uname`` function. The files are namespaced like the syscall: in a container they show the
container's UTS namespace unless the agent shares the host's. Kernel name, release, version and
architecture cannot change while the kernel runs, so they are read once; host and domain names
can, and are read every tick.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import read_optional

UnameFunction = Callable[[], os.uname_result]

# label -> (file under /proc/sys/kernel, os.uname_result attribute)
_STATIC_FIELDS = (
    ("sysname", "ostype", "sysname"),
    ("release", "osrelease", "release"),
    ("version", "version", "version"),
    ("machine", "arch", "machine"),
)
_CHANGING_FIELDS = (
    ("nodename", "hostname", "nodename"),
    ("domainname", "domainname", ""),
)


class UnameCollector:
    """Reports the kernel's name, release, version, architecture and host/domain names."""

    name = "uname"

    def __init__(self, paths: HostPaths, uname: UnameFunction = os.uname) -> None:
        self._folder = paths.proc / "sys" / "kernel"
        self._uname = uname
        self._static: dict[str, str] | None = None

    def collect(self, now: float) -> list[Sample]:
        """Returns: one ``node_uname_info`` sample (value 1)."""
        if self._static is None:
            self._static = self._read(_STATIC_FIELDS)
        labels = {**self._static, **self._read(_CHANGING_FIELDS)}
        return [Sample("node_uname_info", labels, 1.0)]

    def _read(self, fields: tuple[tuple[str, str, str], ...]) -> dict[str, str]:
        labels: dict[str, str] = {}
        fallback: os.uname_result | None = None
        for label, file_name, attribute in fields:
            text = read_optional(self._folder / file_name)
            if text is None:
                if fallback is None:
                    fallback = self._uname()
                # os.uname() has no domain name: left empty (PromQL reads it as absent).
                text = getattr(fallback, attribute) if attribute else ""
            labels[label] = text.rstrip("\n")
        return labels
