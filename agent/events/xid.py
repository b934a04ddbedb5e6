"""The XID table: code -> mnemonic, severity, recommended action, and whether it is fatal.

Stage: part of the events collector. Input: ``xid.toml`` next to this module (data, not code:
one entry per code, a default for codes it does not list, and NVML's recovery-action values).
Output: an ``XidTable`` that classifies an observation into the severity and action an event
carries, and says whether the agent must stop calling the driver for that GPU.

Classification, most specific advice first:

1. an NVML recovery action on the event (what XID 154 announces) gives the action and severity;
2. a code that only reports an earlier error (``follows_root_cause``) takes the advice of the
   root cause the driver named ("caused by previous Xid N");
3. otherwise the code's own entry, raised to the root cause's severity when that is worse.

A code, or its root cause, marked ``fatal_for_driver`` makes the event fatal.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from agent.events.model import Severity

_SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
_MAX_CODE = 65_535


class XidTableError(ValueError):
    """The XID table file is malformed; raised at load time naming the file and entry."""


@dataclass(frozen=True, slots=True)
class XidInfo:
    """What one XID code means (one ``[[xid]]`` entry, or the table's default)."""

    code: int | None  # None for the default entry
    mnemonic: str
    severity: Severity
    action: str
    fatal_for_driver: bool = False
    follows_root_cause: bool = False


@dataclass(frozen=True, slots=True)
class RecoveryAction:
    """One value of NVML's GPU recovery action and how loud it is."""

    value: int
    name: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class Classification:
    """What an event of a given code says: its name, severity, action and fatality."""

    mnemonic: str
    severity: Severity
    action: str
    fatal_for_driver: bool


class XidTable:
    """The XID table: lookups by code, with a default for codes it does not list."""

    def __init__(
        self,
        entries: Iterable[XidInfo],
        default: XidInfo,
        recovery_actions: Iterable[RecoveryAction] = (),
    ) -> None:
        self._entries: dict[int, XidInfo] = {}
        for entry in entries:
            if entry.code is None or entry.code in self._entries:
                raise XidTableError(f"XID {entry.code!r} is missing or listed twice")
            self._entries[entry.code] = entry
        self._default = default
        self._recovery = {action.value: action for action in recovery_actions}

    def __contains__(self, code: object) -> bool:
        return code in self._entries

    def lookup(self, code: int) -> XidInfo:
        """Returns: the entry for ``code``, or the default entry (with ``code`` None)."""
        return self._entries.get(code, self._default)

    def fatal_codes(self) -> frozenset[int]:
        """Returns: the codes after which the agent must stop calling the driver for the GPU."""
        return frozenset(code for code, entry in self._entries.items() if entry.fatal_for_driver)

    def recovery_action(self, value: int) -> RecoveryAction:
        """Returns: the named recovery action, or an ``UNKNOWN_<value>`` one rated critical."""
        known = self._recovery.get(value)
        return known if known is not None else RecoveryAction(value, f"UNKNOWN_{value}", "critical")

    def classify(
        self, code: int, root_cause: int | None = None, recovery_action: int | None = None
    ) -> Classification:
        """Returns: mnemonic, severity, action and fatality of an event (see module docstring)."""
        own = self.lookup(code)
        root = self.lookup(root_cause) if root_cause is not None else None
        fatal = own.fatal_for_driver or (root is not None and root.fatal_for_driver)
        if recovery_action is not None:
            recovery = self.recovery_action(recovery_action)
            return Classification(own.mnemonic, recovery.severity, recovery.name, fatal)
        if root is None:
            return Classification(own.mnemonic, own.severity, own.action, fatal)
        if own.follows_root_cause:
            return Classification(own.mnemonic, root.severity, root.action, fatal)
        return Classification(own.mnemonic, _worse(own.severity, root.severity), own.action, fatal)


def load_xid_table(text: str | None = None, origin: str = "xid.toml") -> XidTable:
    """Parse the XID table.

    Args:
        text: the TOML text; None reads the table shipped next to this module.
        origin: the file name used in error messages.

    Raises:
        XidTableError: the text is not valid TOML or an entry is malformed.
    """
    if text is None:
        text = resources.files("agent.events").joinpath("xid.toml").read_text(encoding="utf-8")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise XidTableError(f"{origin}: {exc}") from None
    unknown = set(document) - {"default", "xid", "recovery_action"}
    if unknown:
        raise XidTableError(f"{origin}: unknown tables {sorted(unknown)}")
    if not isinstance(document.get("default"), dict):
        raise XidTableError(f"{origin}: a [default] table is required")
    default = _parse_xid(document["default"], f"{origin}: [default]", is_default=True)
    entries = [
        _parse_xid(entry, f"{origin}: xid {entry.get('code')!r}", is_default=False)
        for entry in _tables(document.get("xid", []), origin, "xid")
    ]
    recovery = [
        _parse_recovery(entry, f"{origin}: recovery_action {entry.get('value')!r}")
        for entry in _tables(document.get("recovery_action", []), origin, "recovery_action")
    ]
    return XidTable(entries, default, recovery)


def _tables(value: Any, origin: str, name: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise XidTableError(f"{origin}: {name} must be an array of tables ([[{name}]])")
    return value


def _parse_xid(entry: Mapping[str, Any], where: str, *, is_default: bool) -> XidInfo:
    allowed = {"mnemonic", "severity", "action", "fatal_for_driver", "follows_root_cause"}
    if not is_default:
        allowed.add("code")
    unknown = set(entry) - allowed
    if unknown:
        raise XidTableError(f"{where}: unknown keys {sorted(unknown)}")
    code: int | None = None
    if not is_default:
        code = _code(entry.get("code"), where, "code")
    mnemonic = entry.get("mnemonic", "")
    if not isinstance(mnemonic, str):
        raise XidTableError(f"{where}: mnemonic must be a string")
    action = entry.get("action")
    if not isinstance(action, str) or not action:
        raise XidTableError(f"{where}: action must be a non-empty string")
    flags = {name: entry.get(name, False) for name in ("fatal_for_driver", "follows_root_cause")}
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise XidTableError(f"{where}: {name} must be true or false")
    return XidInfo(
        code=code,
        mnemonic=mnemonic,
        severity=_severity(entry.get("severity"), where),
        action=action,
        fatal_for_driver=flags["fatal_for_driver"],
        follows_root_cause=flags["follows_root_cause"],
    )


def _parse_recovery(entry: Mapping[str, Any], where: str) -> RecoveryAction:
    unknown = set(entry) - {"value", "name", "severity"}
    if unknown:
        raise XidTableError(f"{where}: unknown keys {sorted(unknown)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise XidTableError(f"{where}: name must be a non-empty string")
    return RecoveryAction(
        _code(entry.get("value"), where, "value"), name, _severity(entry.get("severity"), where)
    )


def _code(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_CODE:
        raise XidTableError(f"{where}: {key} must be an integer from 0 to {_MAX_CODE}")
    return value


def _severity(value: Any, where: str) -> Severity:
    for severity in _SEVERITIES:
        if value == severity:
            return severity
    raise XidTableError(f"{where}: severity must be one of {list(_SEVERITIES)}")


def _worse(first: Severity, second: Severity) -> Severity:
    return max(first, second, key=_SEVERITIES.index)
