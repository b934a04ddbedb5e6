"""The contract between agent and server: batch schema, its encoding, and the metric catalog.

This package is the only part of ``agent`` the server imports.
"""

from agent.wire.catalog import Catalog, CatalogError, MetricSpec, default_catalog
from agent.wire.codec import (
    CONTENT_ENCODING,
    CONTENT_TYPE,
    Problem,
    WireError,
    decode_batch,
    encode_batch,
)
from agent.wire.schema import (
    SCHEMA_VERSION,
    Ack,
    Batch,
    CollectorStatus,
    GpuFacts,
    HostFacts,
    Inventory,
    MetricFamily,
    NodeIdentity,
    RefusedSeries,
)

__all__ = [
    "CONTENT_ENCODING",
    "CONTENT_TYPE",
    "SCHEMA_VERSION",
    "Ack",
    "Batch",
    "Catalog",
    "CatalogError",
    "CollectorStatus",
    "GpuFacts",
    "HostFacts",
    "Inventory",
    "MetricFamily",
    "MetricSpec",
    "NodeIdentity",
    "Problem",
    "RefusedSeries",
    "WireError",
    "decode_batch",
    "default_catalog",
    "encode_batch",
]
