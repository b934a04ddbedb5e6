"""The remote-write 1.0 wire format: a snappy block-compressed protobuf ``WriteRequest``.

Stage: transport -> remote_write. The message classes are built once, on first use, from a
descriptor of the subset of Prometheus' ``prompb/remote.proto`` and ``types.proto`` that dcmon
reads (field numbers as upstream)::

    message WriteRequest { repeated TimeSeries timeseries = 1; }
    message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    message Label        { string name = 1; string value = 2; }
    message Sample       { double value = 1; int64 timestamp = 2; }

Other fields (metadata, exemplars, native histograms) are unknown to these classes and skipped
by the protobuf parser, so a metadata-only request decodes to no series.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

_PACKAGE = "dcmon.remote_write"
_F = descriptor_pb2.FieldDescriptorProto


class WireFormatError(ValueError):
    """The body is not a snappy-compressed WriteRequest within the size limit (a 400)."""


@dataclass(frozen=True)
class TimeSeries:
    labels: list[tuple[str, str]]
    samples: list[tuple[int, float]]
    """(timestamp in ms, value), as sent."""


@cache
def write_request_class() -> Any:
    """Returns: the ``WriteRequest`` message class (built once)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="dcmon_remote_write.proto", package=_PACKAGE, syntax="proto3"
    )
    _message(file, "Label", [("name", 1, _F.TYPE_STRING, None), ("value", 2, _F.TYPE_STRING, None)])
    _message(
        file, "Sample", [("value", 1, _F.TYPE_DOUBLE, None), ("timestamp", 2, _F.TYPE_INT64, None)]
    )
    _message(
        file,
        "TimeSeries",
        [("labels", 1, _F.TYPE_MESSAGE, "Label"), ("samples", 2, _F.TYPE_MESSAGE, "Sample")],
    )
    _message(file, "WriteRequest", [("timeseries", 1, _F.TYPE_MESSAGE, "TimeSeries")])
    # A private pool: nothing is registered in the default one, so no name can clash.
    classes = message_factory.GetMessages([file], pool=descriptor_pool.DescriptorPool())
    return classes[f"{_PACKAGE}.WriteRequest"]


def _message(
    file: descriptor_pb2.FileDescriptorProto,
    name: str,
    fields: list[tuple[str, int, int, str | None]],
) -> None:
    message = file.message_type.add(name=name)
    for field_name, number, kind, type_name in fields:
        field = message.field.add(name=field_name, number=number, type=kind)
        if type_name is None:
            field.label = _F.LABEL_OPTIONAL
        else:
            field.label = _F.LABEL_REPEATED
            field.type_name = f".{_PACKAGE}.{type_name}"


def decode_write_request(body: bytes, max_decoded_bytes: int) -> list[TimeSeries]:
    """Returns: the request's series, labels and samples as sent.

    Raises:
        WireFormatError: not snappy block format, decoded length past ``max_decoded_bytes``,
            or not a WriteRequest.
    """
    try:
        length = cramjam.snappy.decompress_raw_len(body)
    except cramjam.DecompressionError as exc:
        raise WireFormatError(f"the body is not snappy block format: {exc}") from None
    if length > max_decoded_bytes:
        raise WireFormatError(
            f"decoded length {length} exceeds the limit of {max_decoded_bytes} bytes"
        )
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise WireFormatError(f"the body is not snappy block format: {exc}") from None
    request = write_request_class()()
    try:
        request.ParseFromString(raw)
    except DecodeError as exc:
        raise WireFormatError(f"the body is not a remote-write WriteRequest: {exc}") from None
    return [
        TimeSeries(
            [(label.name, label.value) for label in series.labels],
            [(sample.timestamp, sample.value) for sample in series.samples],
        )
        for series in request.timeseries
    ]


def encode_write_request(series: list[TimeSeries]) -> bytes:
    """Returns: a snappy-compressed WriteRequest of ``series`` (what a sender puts on the wire)."""
    request = write_request_class()()
    for item in series:
        message = request.timeseries.add()
        for name, value in item.labels:
            message.labels.add(name=name, value=value)
        for timestamp, sample in item.samples:
            message.samples.add(timestamp=timestamp, value=sample)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
