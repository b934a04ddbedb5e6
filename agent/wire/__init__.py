"""The contract between agent and server: batch schema, its encoding, the HTTP protocol (routes,
headers, bulk framing, which refusals are final) and the metric catalog.

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
from agent.wire.protocol import (
    BULK_MEDIA_TYPE,
    BULK_PATH,
    INGEST_PATH,
    PERMANENT_CODES,
    SENT_AT_HEADER,
    BulkAnswer,
    BulkRecord,
    FramingError,
    frame_records,
    is_permanent,
    refusal_status,
    split_records,
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
    "BULK_MEDIA_TYPE",
    "BULK_PATH",
    "CONTENT_ENCODING",
    "CONTENT_TYPE",
    "INGEST_PATH",
    "PERMANENT_CODES",
    "SCHEMA_VERSION",
    "SENT_AT_HEADER",
    "Ack",
    "Batch",
    "BulkAnswer",
    "BulkRecord",
    "Catalog",
    "CatalogError",
    "CollectorStatus",
    "FramingError",
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
    "frame_records",
    "is_permanent",
    "refusal_status",
    "split_records",
]
