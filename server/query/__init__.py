"""The Prometheus HTTP query API over dcmon's storage, under ``/prometheus/api/v1/``.

Flow: request parameters (``params``: Prometheus' time, duration and limit formats) ->
``service`` (limits, deadline, the PromQL engine over ``source.StorageSource``, the series index
for the metadata endpoints) -> ``envelope`` (Prometheus' JSON envelope, its error types and
status codes) -> ``router``.
"""
