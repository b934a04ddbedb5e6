"""The routing tree: which receivers an alert goes to, and how it is grouped. Pure.

Alertmanager's semantics (``dispatch/route.go``): an alert enters at the root, which matches
everything; it descends into the first child whose matchers match and stops there unless that
child has ``continue: true``, in which case the following siblings are tried too. A route none
of whose children match is itself the match. Children inherit the receiver, ``group_by`` and
the timers of their parent. ``group_by: ['...']`` groups by every label (no aggregation); an
empty ``group_by`` puts every alert of the route in one group.

Defaults: ``group_wait`` 30 s, ``group_interval`` 5 m, ``repeat_interval`` 4 h.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.notify.matchers import Matcher, format_matchers, matches_all
from server.notify.model import Labels

GROUP_WAIT_S = 30.0
GROUP_INTERVAL_S = 300.0
REPEAT_INTERVAL_S = 4 * 3600.0
ALL_LABELS = "..."


@dataclass(frozen=True)
class Route:
    """One node of the tree; ``group_by`` is None for ``['...']`` (every label)."""

    receiver: str
    route_id: str
    key: str
    matchers: tuple[Matcher, ...] = ()
    group_by: frozenset[str] | None = frozenset()
    group_wait_s: float = GROUP_WAIT_S
    group_interval_s: float = GROUP_INTERVAL_S
    repeat_interval_s: float = REPEAT_INTERVAL_S
    continue_matching: bool = False
    routes: tuple[Route, ...] = field(default=())

    def match(self, labels: Labels) -> list[Route]:
        """Returns: the routes ``labels`` end at, in tree order (empty when none)."""
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found.extend(matched)
            if matched and not child.continue_matching:
                break
        return found or [self]

    def group_labels(self, labels: Labels) -> Labels:
        """Returns: the labels that name the alert's group on this route."""
        if self.group_by is None:
            return labels
        return tuple((name, value) for name, value in labels if name in self.group_by)

    def group_key(self, group_labels: Labels) -> str:
        """Returns: Alertmanager's group key, ``{}/{severity="page"}:{alertname="X"}``."""
        inner = ", ".join(f'{name}="{_escape(value)}"' for name, value in group_labels)
        return f"{self.key}:{{{inner}}}"


def make_route(
    receiver: str,
    *,
    matchers: tuple[Matcher, ...] = (),
    group_by: list[str] | None = None,
    group_wait_s: float | None = None,
    group_interval_s: float | None = None,
    repeat_interval_s: float | None = None,
    continue_matching: bool = False,
    parent: Route | None = None,
    index: int = 0,
) -> Route:
    """Returns: a route without children (add them with ``dataclasses.replace``), its unset
    fields inherited from ``parent`` (or the defaults); ``receiver`` "" inherits it too.

    Raises: ValueError: ``'...'`` with other labels, or a root without a receiver.
    """
    inherited_group_by: frozenset[str] | None = frozenset() if parent is None else parent.group_by
    if group_by is None:
        grouping = inherited_group_by
    elif ALL_LABELS in group_by:
        if group_by != [ALL_LABELS]:
            raise ValueError("group_by '...' must be the only label")
        grouping = None
    else:
        grouping = frozenset(group_by)
    if parent is None:
        key = format_matchers(matchers)
        route_id = key
    else:
        key = f"{parent.key}/{format_matchers(matchers)}"
        route_id = f"{parent.route_id}/{index}{format_matchers(matchers)}"
    receiver = receiver or (parent.receiver if parent is not None else "")
    if not receiver:
        raise ValueError("the root route needs a receiver")
    return Route(
        receiver=receiver,
        route_id=route_id,
        key=key,
        matchers=matchers,
        group_by=grouping,
        group_wait_s=_pick(group_wait_s, parent.group_wait_s if parent else GROUP_WAIT_S),
        group_interval_s=_pick(
            group_interval_s, parent.group_interval_s if parent else GROUP_INTERVAL_S
        ),
        repeat_interval_s=_pick(
            repeat_interval_s, parent.repeat_interval_s if parent else REPEAT_INTERVAL_S
        ),
        continue_matching=continue_matching,
    )


def walk(route: Route) -> list[Route]:
    """Returns: ``route`` and all routes below it, depth first."""
    out = [route]
    for child in route.routes:
        out.extend(walk(child))
    return out


def _pick(value: float | None, inherited: float) -> float:
    return inherited if value is None else value


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
