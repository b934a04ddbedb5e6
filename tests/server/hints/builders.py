"""Small hand-made clusters for the hint engine's tests."""

from __future__ import annotations

from server.hints.model import MILLI, Failure, Gpu, Node, PendingShape, Pod, Request, Snapshot


def gpu_node(
    name: str,
    gpus: int = 8,
    cpu_milli: int = 96_000,
    memory_mib: int = 786_432,
    model: str = "H100",
    failures: dict[int, tuple[Failure, ...]] | None = None,
) -> Node:
    """An empty node; ``cluster`` subtracts its pods' requests from the free capacity."""
    failures = failures or {}
    return Node(
        name=name,
        cpu_milli=cpu_milli,
        cpu_milli_free=cpu_milli,
        memory_mib=memory_mib,
        memory_mib_free=memory_mib,
        gpus=tuple(
            Gpu(index=i, uuid=f"GPU-{name}-{i}", model=model, memory_mib=81_559,
                failures=failures.get(i, ()))
            for i in range(gpus)
        ),
    )  # fmt: skip


def cpu_node(name: str, cpu_milli: int = 64_000, memory_mib: int = 262_144) -> Node:
    return gpu_node(name, gpus=0, cpu_milli=cpu_milli, memory_mib=memory_mib)


def pod(
    pod_id: str,
    node: str | None,
    cpu_milli: int = 4_000,
    memory_mib: int = 16_384,
    gpus: tuple[int, ...] = (),
    gpu_milli: int = MILLI,
    **kwargs: object,
) -> Pod:
    request = Request(cpu_milli, memory_mib, len(gpus), gpu_milli if gpus else 0)
    return Pod(id=pod_id, request=request, node=node, gpus=gpus, **kwargs)  # type: ignore[arg-type]


def cluster(
    nodes: list[Node], pods: list[Pod], pending: tuple[PendingShape, ...] = (), **kwargs: object
) -> Snapshot:
    """A snapshot whose free capacity is each node's capacity less its pods' requests."""
    used: dict[str, list[Pod]] = {}
    for p in pods:
        if p.node is not None:
            used.setdefault(p.node, []).append(p)
    built = []
    for n in nodes:
        mine = used.get(n.name, [])
        gpu_used: dict[int, int] = {}
        for p in mine:
            for index in p.gpus:
                gpu_used[index] = gpu_used.get(index, 0) + p.request.gpu_milli
        built.append(
            Node(
                name=n.name,
                cpu_milli=n.cpu_milli,
                cpu_milli_free=n.cpu_milli - sum(p.request.cpu_milli for p in mine),
                memory_mib=n.memory_mib,
                memory_mib_free=n.memory_mib - sum(p.request.memory_mib for p in mine),
                gpus=tuple(
                    Gpu(g.index, g.uuid, g.model, g.memory_mib, MILLI - gpu_used.get(g.index, 0),
                        g.failures, g.slowdown_celsius)
                    for g in n.gpus
                ),
                labels=n.labels,
                schedulable=n.schedulable,
            )
        )  # fmt: skip
    return Snapshot(nodes=tuple(built), pods=tuple(pods), pending=pending, **kwargs)  # type: ignore[arg-type]


def shape(num_gpu: int, cpu_milli: int, gpu_milli: int = MILLI, count: int = 1) -> PendingShape:
    memory = 16_384
    return PendingShape(Request(cpu_milli, memory, num_gpu, gpu_milli if num_gpu else 0), count)
