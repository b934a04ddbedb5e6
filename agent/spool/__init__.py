"""The spool: batches waiting to be delivered, oldest first.

Stage: batch -> spool -> transport. Every encoded batch is appended here before any send is
attempted; the shipper peeks the oldest, sends it, and acknowledges it only once the server has.
The budget is bounded: past it the oldest batch is dropped and counted, never the newest.
"""

from agent.spool.base import Spool, SpooledBatch, SpoolStats
from agent.spool.memory import MemorySpool

__all__ = ["MemorySpool", "Spool", "SpoolStats", "SpooledBatch"]
