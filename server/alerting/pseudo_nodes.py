"""Server-side nodes: where rule output and ``dcmon_node_up`` are stored as series.

Stage: alerting -> storage. Rule output is written through the store like any batch, one node
per rule group (its interval is the group's, so the query source's staleness rules end a
series that a round no longer writes exactly as they end a pushed one), and one node for the
server-derived ``dcmon_node_up``. A series keeps its labels exactly: the query source shows a
server-side node's series with their own labels only (no ``instance`` of the node), so
``ALERTS{instance="gpu-1"}`` is the alert of node ``gpu-1`` and a recording rule's ``sum``
has no ``instance`` at all. A server-side node is told from the others by its node id, derived
from its name with a prefix no agent or remote-write node id uses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PREFIX = "dcmon-rules/"
SERVER_NODE_NAME = "dcmon-server"
_ID_SALT = "dcmon-server-side\0"


@dataclass(frozen=True)
class PseudoNode:
    node_id: str
    name: str
    interval_seconds: float


def node_id_for(name: str) -> str:
    """Returns: the 32-hex node id of the server-side node ``name``."""
    return hashlib.sha256(f"{_ID_SALT}{name}".encode()).hexdigest()[:32]


def is_server_side(node_id: str, name: str) -> bool:
    """Returns: whether the node ``node_id``/``name`` holds server-side series."""
    return node_id == node_id_for(name)


def group_node(group_key: str, group_name: str, interval_seconds: float) -> PseudoNode:
    """Returns: the node of one rule group (``group_key`` names file and group uniquely)."""
    digest = hashlib.sha256(group_key.encode()).hexdigest()[:8]
    name = f"{PREFIX}{group_name[:200]}/{digest}"
    return PseudoNode(node_id_for(name), name, interval_seconds)


def server_node(interval_seconds: float) -> PseudoNode:
    """Returns: the node of ``dcmon_node_up``."""
    return PseudoNode(node_id_for(SERVER_NODE_NAME), SERVER_NODE_NAME, interval_seconds)
