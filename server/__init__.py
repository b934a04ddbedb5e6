"""dcmon server: ingest agent batches, keep history, serve the REST API, /metrics and the web UI.

Import-light on purpose: ``dcmon token`` and the CLI dispatcher import this package without the
server extras installed. The application is built by ``server.app.create_app(settings)``.
"""
