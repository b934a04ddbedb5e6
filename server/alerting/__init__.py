"""Rule evaluation inside the server: the rules core (``server/rules``) run on live storage.

Flow: ``ruleset`` loads the shipped pack and the configured rule files -> ``evaluator`` runs
each group at its interval over a ``StorageSource`` (leader only), holding the alerts of nodes
that are down or catching up (``hold``) -> ``writeback`` stores recording rules' results,
``ALERTS``/``ALERTS_FOR_STATE`` and ``dcmon_node_up`` as series of server-side nodes
(``pseudo_nodes``) -> ``statestore`` persists the alert state -> ``notifier`` is the seam the
notification stage plugs into. ``runner`` is the background thread; ``views`` and ``router``
answer the rules and alerts APIs.
"""
