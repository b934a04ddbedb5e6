"""PCI bus ids in one spelling, so NVML's and the kernel log's names of a GPU compare equal.

NVML writes ``00000000:65:00.0``; the kernel log writes ``0000:65:00``.
"""

from __future__ import annotations

import re

# domain:bus:device[.function], domain 1 to 8 hex digits (kernel vs NVML spelling).
_BUS_ID_RE = re.compile(
    r"^(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):(?P<device>[0-9a-fA-F]{1,2})"
    r"(?:\.(?P<function>[0-7]))?$"
)


def normalise_bus_id(text: str) -> str | None:
    """Returns: ``text`` as NVML spells a PCI bus id (``DDDDDDDD:BB:DD.F``, upper-case hex), or
    None when it is not a bus id. A missing domain is 0 and a missing function is 0."""
    match = _BUS_ID_RE.match(text.strip())
    if match is None:
        return None
    domain = int(match["domain"] or "0", 16)
    bus, device = int(match["bus"], 16), int(match["device"], 16)
    function = int(match["function"] or "0")
    if device > 0x1F:
        return None
    return f"{domain:08X}:{bus:02X}:{device:02X}.{function}"
