"""Who is calling: a ``Principal`` with a role, and for node tokens the one node it may write.

Roles, from narrowest to widest:

- ``node``: a per-node token from enrollment; writes only its own node's data.
- ``ingest``: a shared fleet token from the config file (``ingest_token_sha256``); writes any
  node. Kept for small sites and the demo; per-node tokens are the secure default.
- ``bootstrap``: may only enroll nodes (exchange itself for a node token).
- ``read``: reads the API, /metrics and the web page.
- ``admin``: admin endpoints (tokens, and later rules and benchmarks); may also read.
- ``scheduler``: automation that acts on rebalancing hints (a Slurm or Kubernetes operator):
  may change a hint's state (acknowledged, dismissed, applied); may also read.
- ``anonymous``: no token, allowed only on reads when ``open_reads`` is set, and on health.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    NODE = "node"
    INGEST = "ingest"
    BOOTSTRAP = "bootstrap"
    READ = "read"
    ADMIN = "admin"
    SCHEDULER = "scheduler"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``token_id`` names the credential (never the secret)."""

    role: Role
    token_id: str
    node_id: str | None = None

    def may_write_node(self, node_id: str) -> bool:
        """Returns: True when this caller may write data for ``node_id``."""
        if self.role is Role.INGEST:
            return True
        return self.role is Role.NODE and self.node_id == node_id


ANONYMOUS = Principal(Role.ANONYMOUS, "anonymous")
