"""What several dcmon dashboards share: their variables, drill-down links and query pieces.

Stage: dashboards (build time). Input: none; output: ``Variable``s, ``Link``s and PromQL
fragments. No query names the ``job`` label: dcmon's own series have none and a Prometheus
that scrapes dcmon adds one, so nodes are chosen by ``instance`` (the node's name on both),
GPUs by ``gpu`` (the index) and jobs by ``job_id``.
"""

from __future__ import annotations

from dashboards.generator.spec import Link, ValueMap, Variable

RATE = "$__rate_interval"
RANGE = "$__range"
NODE = 'instance="$instance"'
GPU = 'instance="$instance", gpu="$gpu"'
GPU_KEY = "instance, gpu, UUID"  # one GPU, whatever other labels its series carry

INSTANCE = Variable("instance", "Node", "label_values(dcmon_node_up, instance)")
GPU_INDEX = Variable(
    "gpu", "GPU", 'label_values(dcmon_gpu_up{instance="$instance"}, gpu)', numeric=True
)

NODE_LINK = Link("node", "Node ${__field.labels.instance}", {"instance": "instance"})
NODE_ROW_LINK = Link("node", "Node ${__data.fields.instance}", {"instance": "instance"})
GPU_LINK = Link(
    "gpu",
    "GPU ${__field.labels.gpu} of ${__field.labels.instance}",
    {"instance": "instance", "gpu": "gpu"},
)
GPU_ROW_LINK = Link(
    "gpu",
    "GPU ${__data.fields.gpu} of ${__data.fields.instance}",
    {"instance": "instance", "gpu": "gpu"},
)
FABRIC_LINK = Link("fabric", "Fabric of ${__field.labels.instance}", {"instance": "instance"})
JOB_ROW_LINK = Link("job", "Job ${__data.fields.job_id}", {"job_id": "job_id"})

IB_STATES = (  # node_exporter's node_infiniband_state_id
    ValueMap("1", "down", "red"),
    ValueMap("2", "init", "orange"),
    ValueMap("3", "armed", "orange"),
    ValueMap("4", "active", "green"),
    ValueMap("5", "active defer", "orange"),
)
UP_DOWN = (ValueMap("0", "down", "red"), ValueMap("1", "up", "green"))
NO_YES = (ValueMap("0", "no", "green"), ValueMap("1", "yes", "red"))


def by_job(metric: str, job: str = 'job_id=~"$job_id"') -> str:
    """Returns: ``metric`` per job and GPU: each GPU's series joined to the jobs that hold it
    (``dcmon_job_gpu_info``, one series per job and GPU, matched on the GPU's UUID), labelled
    like the info series (``job_id``, ``user``, ``instance``, ``gpu``, ...)."""
    return f"{metric} * on (UUID) group_right () dcmon_job_gpu_info{{{job}}}"
