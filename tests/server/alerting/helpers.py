"""In-memory rigs for the alerting tests: an evaluator over twins, rule text loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.alerting import hold
from server.alerting.evaluator import Config, Evaluator
from server.alerting.notifier import MemoryNotifier
from server.alerting.ruleset import LoadedGroup, RuleSet
from server.alerting.statestore import MemoryStateStore
from server.alerting.writeback import MemorySeriesWriter
from server.rules.load import load_text

T0 = 1_800_000_000.0  # a whole minute


def ruleset(text: str, name: str = "alerts/test.yaml") -> RuleSet:
    loaded = load_text(text, name)
    return RuleSet(tuple(LoadedGroup(f"{name};{g.name}", name, g) for g in loaded.groups))


@dataclass
class Rig:
    """One "replica": an evaluator whose storage, state and notifier may be shared."""

    writer: MemorySeriesWriter = field(default_factory=MemorySeriesWriter)
    states: MemoryStateStore = field(default_factory=MemoryStateStore)
    notifier: MemoryNotifier = field(default_factory=MemoryNotifier)
    nodes: list[hold.NodeStatus] = field(default_factory=list)
    config: Config = field(default_factory=lambda: Config(query_offset_ms=0))

    def evaluator(self, rules: RuleSet, *, lead: bool = True) -> Evaluator:
        evaluator = Evaluator(
            self.config,
            lambda: self.writer.series,
            self.writer,
            self.states,
            self.notifier,
            lambda _now: list(self.nodes),
        )
        evaluator.set_rules(rules)
        if lead:
            evaluator.lead()
        return evaluator

    def add(self, labels: dict[str, str], t: float, value: float) -> None:
        self.writer.series.add(labels, [round(t * 1000)], [value])
