"""Inhibition: a firing source alert mutes target alerts with the same ``equal`` labels. Pure.

Alertmanager's ``inhibit_rules`` (``inhibit/inhibit.go``): a target alert (matching
``target_matchers``) is muted while some other alert matching ``source_matchers`` is firing
and has the same values for every ``equal`` label (a missing label and an empty one count as
equal). An alert never inhibits itself. The example dcmon needs: a node's GPU alerts muted
while ``NodeDown`` fires for that ``instance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from server.notify.matchers import Matcher, matches_all
from server.notify.model import Labels, Notice, fingerprint


@dataclass(frozen=True)
class InhibitRule:
    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


class Inhibitor:
    """The rules, applied against a snapshot of the alerts that are firing now."""

    def __init__(self, rules: Sequence[InhibitRule], firing: Sequence[Notice]) -> None:
        self._sources: list[tuple[InhibitRule, list[tuple[str, dict[str, str]]]]] = []
        for rule in rules:
            sources = [
                (fingerprint(n.labels), dict(n.labels))
                for n in firing
                if matches_all(rule.source_matchers, n.labels)
            ]
            self._sources.append((rule, sources))

    def mutes(self, labels: Labels) -> bool:
        target = dict(labels)
        own = fingerprint(labels)
        for rule, sources in self._sources:
            if not matches_all(rule.target_matchers, labels):
                continue
            for source_fp, source in sources:
                if source_fp == own:
                    continue
                if all(source.get(name, "") == target.get(name, "") for name in rule.equal):
                    return True
        return False
