"""dcmon node agent: collect host and GPU telemetry and push it to the dcmon server.

Import-light on purpose: the server imports ``agent.wire`` and an agent-only install runs
``dcmon agent``, so nothing here may pull in heavy or optional dependencies.
"""

__version__ = "0.1.0"
