"""The ``kernel_hung`` collector: tasks the kernel found hung, from ``hung_task_detect_count``.

Input: ``/proc/sys/kernel/hung_task_detect_count`` (Linux 6.13+ with
``CONFIG_DETECT_HUNG_TASK``; absent elsewhere, which yields nothing). Output, as node_exporter's
kernel_hung (1.11+): the counter ``node_kernel_hung_tasks_total``, tasks seen in uninterruptible
sleep for longer than ``kernel.hung_task_timeout_secs`` since boot: on a GPU node typically a
process stuck in the driver or on a dead NFS or parallel-filesystem mount. Newer kernels let
root reset it by writing 0; the server takes that as a counter reset.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import parse_int, read_optional


class KernelHungCollector:
    """Reads the kernel's hung-task count."""

    name = "kernel_hung"

    def __init__(self, paths: HostPaths) -> None:
        self._path = paths.proc / "sys" / "kernel" / "hung_task_detect_count"

    def collect(self, now: float) -> list[Sample]:
        """Returns: the hung-task counter, or nothing where the kernel does not keep it.

        Raises:
            MalformedFileError: the file does not hold one integer.
        """
        text = read_optional(self._path)
        if text is None:
            return []
        return [
            Sample("node_kernel_hung_tasks_total", {}, float(parse_int(self._path, text.strip())))
        ]
