"""Request dependencies: the application's services, reached through ``app.state``.

Built once in ``create_app`` and handed to routes as ``Annotated`` aliases, so routes stay thin
and tests can build an app with their own clock, store or settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from agent.wire.catalog import Catalog
from server.auth import Authenticator
from server.auth.credentials import CredentialStore
from server.bench.service import BenchService
from server.events.store import EventStore
from server.exposition.render import Renderer
from server.exposition.self_metrics import ServerMetrics
from server.ingest.service import IngestService
from server.jobs.store import JobStore
from server.latest.cache import LatestCache, StalePolicy
from server.settings import ServerSettings
from server.storage.compactor import Compactor
from server.storage.leader import Leadership
from server.storage.reader import Reader
from server.storage.store import Store
from server.storage.tiers import TierPlan


@dataclass(frozen=True)
class Services:
    settings: ServerSettings
    catalog: Catalog
    store: Store
    reader: Reader
    compactor: Compactor
    leader: Leadership
    plan: TierPlan
    events: EventStore
    jobs: JobStore
    latest: LatestCache
    policy: StalePolicy
    ingest: IngestService
    authenticator: Authenticator
    credentials: CredentialStore
    renderer: Renderer
    metrics: ServerMetrics
    bench: BenchService
    clock: Callable[[], float]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
