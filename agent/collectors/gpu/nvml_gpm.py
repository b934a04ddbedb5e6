"""GPU Performance Monitoring (GPM, Hopper and newer): metrics from two samples a tick apart.

Stage: ``NvmlSession`` (``nvml.py``) -> (this) -> ``PynvmlBackend.gpm_supported`` and
``gpm_metrics`` -> the GPM readings of ``readings.py``. Input: a GPU index (and, on a MIG GPU,
a GPU instance id) and the metrics wanted. Output: each metric's value over the interval since
the previous call for the same GPU (and instance), in NVML's units; the first call has no
previous sample and raises ``NvmlNotFound``.

The previous sample is kept in the driver per GPU and per MIG GPU instance; each is freed when
it is replaced, and the rest when the session ends (``release``). Whether a GPU has GPM is
asked once per session.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from agent.collectors.gpu.backend import (
    GpmMetric,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlNotFound,
    NvmlNotSupported,
)
from agent.collectors.gpu.nvml import NVML_SUCCESS, NvmlSession

_log = logging.getLogger(__name__)


class NvmlGpm:
    """GPM metrics through ``session``, keeping each GPU's previous sample."""

    def __init__(self, session: NvmlSession) -> None:
        self._nvml = session
        self._support: dict[int, bool] = {}
        self._samples: dict[tuple[int, int | None], Any] = {}

    def release(self) -> None:
        """Free every kept sample in the driver."""
        samples, self._samples = self._samples, {}
        for sample in samples.values():
            self._free(sample)

    def forget(self) -> None:
        self._support.clear()
        self._samples.clear()

    def supported(self, index: int) -> bool:
        """Returns: whether GPU ``index`` has GPM (asked once per session)."""
        known = self._support.get(index)
        if known is not None:
            return known
        try:
            supported = bool(
                self._nvml.device("nvmlGpmQueryDeviceSupport", index).isSupportedDevice
            )
        except (NvmlNotSupported, NvmlFunctionNotFound):
            supported = False
        self._support[index] = supported
        return supported

    def metrics(
        self, index: int, metrics: Sequence[GpmMetric], gpu_instance_id: int | None = None
    ) -> dict[GpmMetric, float]:
        """Returns: the finite values among ``metrics`` since the previous call.

        Raises:
            NvmlNotSupported: the GPU has no GPM.
            NvmlNotFound: this is the first sample; the metrics need a second one.
        """
        if not self.supported(index):
            raise NvmlNotSupported(f"GPU {index} has no GPM (Hopper or newer needed)")
        nvml = self._nvml
        nv = nvml.module()
        with nvml.device_lock(index):
            sample = nvml.call("nvmlGpmSampleAlloc")
            try:
                if gpu_instance_id is None:
                    nvml.device("nvmlGpmSampleGet", index, sample)
                else:
                    nvml.device("nvmlGpmMigSampleGet", index, gpu_instance_id, sample)
            except NvmlError:
                self._free(sample)
                raise
            key = (index, gpu_instance_id)
            previous = self._samples.get(key)
            self._samples[key] = sample
            if previous is None:
                raise NvmlNotFound("first GPM sample: the metrics need a second one", code=6)
            try:
                request = nv.c_nvmlGpmMetricsGet_t()
                request.version = nv.NVML_GPM_METRICS_GET_VERSION
                request.numMetrics = len(metrics)
                request.sample1 = previous
                request.sample2 = sample
                for slot, metric in enumerate(metrics):
                    request.metrics[slot].metricId = int(metric)
                result = nvml.call("nvmlGpmMetricsGet", request)
            finally:
                self._free(previous)
        values: dict[GpmMetric, float] = {}
        for slot, metric in enumerate(metrics):
            entry = result.metrics[slot]
            if int(entry.nvmlReturn) == NVML_SUCCESS and math.isfinite(float(entry.value)):
                values[metric] = float(entry.value)
        return values

    def _free(self, sample: Any) -> None:
        try:
            self._nvml.call("nvmlGpmSampleFree", sample)
        except NvmlError as exc:
            _log.debug("NVML GPM sample not freed: %s", exc)
