"""Trace-replay simulator for rebalancing hints.

Flow: ``trace`` (node and pod CSV files -> ``NodeTable``, ``PodTable``) -> ``workload``
(arrival order: shuffled pods, tuned up to a share of GPU capacity) -> ``replay`` (each arrival
placed on a ``cluster.ClusterState`` by a ``policies`` placement policy, hooks called at chosen
arrival points) -> ``ReplayResult`` (GPU allocation against arrival, the FGD artifact's metric).

The placement policies (Random, BestFit, FGD) follow the semantics of the FGD paper's Kubernetes
scheduler simulator so that the replay reproduces its published allocation figures; ``frag``
holds FGD's fragmentation measure. No web framework or database imports here.
"""
