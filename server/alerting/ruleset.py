"""Which rule files the server evaluates, loaded and keyed: the shipped pack and the site's.

Stage: configuration -> alerting. Files are the shipped pack (``alerts/*.yaml``, see
``SHIPPED_DIR``, when present and enabled) and every file matching the ``rule_files``
globs, in that order, each file once. ``load`` reads them all; a file that fails keeps the
groups it had in the previous rule set (none at start-up) and its problems are reported, so
a broken edit never drops rules that were running.

A group's key is ``<file>;<group name>``, the file named as it is configured (the shipped pack
as ``alerts/<name>``), so replicas configured alike agree on keys and share persisted state.
Alert state belongs to a rule by ``rule_keys``: its name and labels (with an occurrence count
for repeats), Prometheus' notion of "the same rule" on reload, so editing a threshold or an
annotation keeps a running ``for`` timer.
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.rules.errors import RuleFileError
from server.rules.load import load_file
from server.rules.model import Group

_log = logging.getLogger(__name__)


def _shipped_dir() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "pack"  # where the wheel puts alerts/ (pyproject.toml's force-include)
    return packaged if packaged.is_dir() else here.parent.parent / "alerts"


SHIPPED_DIR = _shipped_dir()
"""The rule pack shipped with dcmon: ``alerts/`` beside the ``server`` package in a source
tree, ``server/alerting/pack`` in an installed wheel."""


@dataclass(frozen=True)
class RuleSource:
    """One rule file: where it is read from and the name it is known by."""

    path: Path
    name: str


@dataclass(frozen=True)
class LoadedGroup:
    key: str  # "<file name>;<group name>"
    file: str
    group: Group


@dataclass(frozen=True)
class RuleSet:
    groups: tuple[LoadedGroup, ...] = ()
    errors: dict[str, list[str]] = field(default_factory=dict)  # file name -> problems

    def group(self, key: str) -> LoadedGroup | None:
        return next((g for g in self.groups if g.key == key), None)


def discover(patterns: Sequence[str], shipped_dir: Path | None) -> list[RuleSource]:
    """Returns: the rule files to load, shipped pack first, each once, sorted within a glob."""
    found: list[RuleSource] = []
    seen: set[Path] = set()

    def add(path: Path, name: str) -> None:
        resolved = path.resolve()
        if resolved not in seen and path.is_file():
            seen.add(resolved)
            found.append(RuleSource(path, name))

    if shipped_dir is not None and shipped_dir.is_dir():
        for path in sorted(shipped_dir.glob("*.yaml")) + sorted(shipped_dir.glob("*.yml")):
            add(path, f"alerts/{path.name}")
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches and not glob.has_magic(pattern):
            matches = [pattern]  # a plain path that is missing: reported by load
        for match in matches:
            path = Path(match)
            if path.is_dir():
                for inner in sorted(path.glob("*.y*ml")):
                    add(inner, str(inner))
            elif not path.exists():
                found.append(RuleSource(path, match))
            else:
                add(path, match)
    return found


def load(sources: Iterable[RuleSource], previous: RuleSet | None = None) -> RuleSet:
    """Returns: the groups of every source; a source that fails to load keeps its groups of
    ``previous`` and has its problems in ``errors``."""
    groups: list[LoadedGroup] = []
    errors: dict[str, list[str]] = {}
    for source in sources:
        try:
            loaded = load_file(str(source.path))
        except RuleFileError as exc:
            errors[source.name] = exc.problems
            _log.error("rule file %s not loaded: %s", source.name, "; ".join(exc.problems))
            if previous is not None:
                groups.extend(g for g in previous.groups if g.file == source.name)
            continue
        groups.extend(
            LoadedGroup(f"{source.name};{group.name}", source.name, group)
            for group in loaded.groups
        )
    return RuleSet(tuple(groups), errors)


def rule_keys(group: Group) -> list[str]:
    """Returns: each rule's state key in ``group`` (see the module docstring)."""
    keys: list[str] = []
    counts: dict[str, int] = {}
    for rule in group.rules:
        base = json.dumps([rule.name, sorted(rule.labels)], separators=(",", ":"))
        counts[base] = counts.get(base, 0) + 1
        keys.append(f"{base}#{counts[base]}")
    return keys
