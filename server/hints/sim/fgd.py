"""FGD placement: the node and GPU where a pod grows fragmentation least.

Stage: simulator placement (a ``policies.Policy``). For every node that fits, and for a GPU
share every GPU that holds it, the fragmentation of the node after the placement is compared
with before (``frag.FragModel``); the score is ``int(sigmoid(Δ/1000) x 100)`` with Δ the
fragment milli removed (the reference's ``FGDScore``, no normalisation). The highest score
wins, ties by the per-seed node order; within a node the first GPU with the best score.

Per-node summaries are cached and recomputed only for nodes whose ``node_version`` changed, so
a placement costs one small vectorised pass over the candidates.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from server.hints.sim.cluster import ClusterState, first_free_gpus
from server.hints.sim.frag import FragModel
from server.hints.sim.policies import MAX_NODE_SCORE, Placement, pick_node
from server.hints.sim.trace import MILLI

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def fgd_score(delta_milli: FloatArray) -> IntArray:
    """Returns: ``int(sigmoid(Δ/1000) x 100)``, Δ = fragment milli before minus after."""
    sigmoid = 1.0 / (1.0 + np.exp(-delta_milli / 1000.0))
    score: IntArray = np.trunc(sigmoid * MAX_NODE_SCORE).astype(np.int64)
    return score


class FGDPolicy:
    name = "fgd"

    def __init__(self, model: FragModel, rank: IntArray) -> None:
        self.model = model
        self._rank = rank
        self._version: IntArray | None = None
        self._idle = np.zeros(0, dtype=np.int64)
        self._fitting = np.zeros((0, 0), dtype=np.int64)
        self._short = np.zeros((0, 0), dtype=np.int64)
        self._frag = np.zeros(0, dtype=np.float64)

    def _refresh(self, state: ClusterState) -> None:
        """Recomputes the summaries of nodes changed since the last call."""
        if self._version is None or len(self._version) != len(state.node_version):
            every = np.arange(len(state.node_version))
            s = self.model.summarize(state.gpu_free)
            self._idle, self._fitting, self._short = s.idle, s.fitting, s.short
            self._frag = self.model.frag(every, state.cpu_free, s.idle, s.fitting, s.short)
            self._version = state.node_version.copy()
            return
        changed = np.flatnonzero(self._version != state.node_version)
        if len(changed) == 0:
            return
        s = self.model.summarize(state.gpu_free[changed])
        self._idle[changed] = s.idle
        self._fitting[changed] = s.fitting
        self._short[changed] = s.short
        self._frag[changed] = self.model.frag(
            changed, state.cpu_free[changed], s.idle, s.fitting, s.short
        )
        self._version[changed] = state.node_version[changed]

    def place(self, state: ClusterState, pod: int) -> Placement | None:
        candidates = np.flatnonzero(state.fits(pod))
        if len(candidates) == 0:
            return None
        self._refresh(state)
        pods, model = state.pods, self.model
        cpu_after = state.cpu_free[candidates] - pods.cpu_milli[pod]
        num_gpu, share = int(pods.num_gpu[pod]), int(pods.gpu_milli[pod])
        if num_gpu == 1 and share < MILLI:
            free = state.gpu_free[candidates]
            rows, slots = np.nonzero(free >= share)
            nodes = candidates[rows]
            before = free[rows, slots]
            after = before - share
            frag_after = model.frag(
                nodes,
                cpu_after[rows],
                self._idle[nodes] - share,
                self._fitting[nodes] + model.fits_table[after] - model.fits_table[before],
                self._short[nodes] + model.short_table[after] - model.short_table[before],
            )
            by_slot = np.full(free.shape, -1, dtype=np.int64)
            by_slot[rows, slots] = fgd_score(self._frag[nodes] - frag_after)
            node_row = pick_node(
                np.arange(len(candidates)), by_slot.max(axis=1), self._rank[candidates]
            )
            node = int(candidates[node_row])
            return Placement(node, (int(np.argmax(by_slot[node_row])),))
        whole = num_gpu * MILLI
        fitting = self._fitting[candidates]
        short = self._short[candidates]
        if num_gpu:
            # n wholly free GPUs become fully used: each stops fitting every group, and
            # neither a free nor a full GPU leaves milli short.
            fitting = fitting - num_gpu * (model.fits_table[MILLI] - model.fits_table[0])
            short = short - num_gpu * (model.short_table[MILLI] - model.short_table[0])
        frag_after = model.frag(
            candidates, cpu_after, self._idle[candidates] - whole, fitting, short
        )
        scores = fgd_score(self._frag[candidates] - frag_after)
        node = pick_node(candidates, scores, self._rank)
        return Placement(node, first_free_gpus(state, node, num_gpu) if num_gpu else ())
