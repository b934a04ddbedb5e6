"""Node identity: a stable node id persisted on disk, the node's name, hostname and labels.

The node id survives restarts and renames (it lives in the state directory); the name is what
operators see as the ``instance`` label (the hostname unless configured).
"""

from __future__ import annotations

import logging
import re
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

from agent.statefile import read_text, write_atomically
from agent.wire.schema import NodeIdentity

_log = logging.getLogger(__name__)
_NODE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
NODE_ID_FILE = "node-id"


def load_or_create_node_id(state_dir: Path) -> str:
    """Returns: the node id stored in ``state_dir``, creating one on first start.

    Raises:
        StateError: the state directory cannot be read or written.
    """
    path = state_dir / NODE_ID_FILE
    existing = read_text(path)
    if existing is not None and _NODE_ID_RE.match(existing):
        return existing
    if existing is not None:
        _log.warning("%s holds no valid node id; creating a new one", path)
    node_id = uuid.uuid4().hex
    write_atomically(path, node_id + "\n")
    _log.info("created node id %s in %s", node_id, path)
    return node_id


def node_identity(
    node_id: str, name: str | None, labels: Mapping[str, str], hostname: str | None = None
) -> NodeIdentity:
    """Returns: the identity every batch carries."""
    host = hostname or socket.gethostname() or "localhost"
    return NodeIdentity(node_id=node_id, name=name or host, hostname=host, labels=dict(labels))
