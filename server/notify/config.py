"""Notification settings: the ``[notify]`` section of server.toml and the receivers file.

The TOML section (``NotifySettings``) names the Alertmanagers to send to and, for sites
without one, a receivers file in Alertmanager's own configuration format (the subset that
applies: ``route``, ``receivers`` with ``webhook_configs``, and ``inhibit_rules``), so operators
reuse what they know and can move the file to a real Alertmanager later; dcmon adds
``apprise_configs`` (a list of Apprise URLs) for chat, e-mail and paging. Unknown keys are
errors. ``load_receivers`` reads and checks the file; problems are ``NotifyConfigError`` with
the place in the file. Durations are Prometheus' (``30s``, ``5m``, ``4h``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from server.notify.inhibit import InhibitRule
from server.notify.matchers import MatcherError, parse_matchers
from server.notify.route import Route, make_route, walk
from server.rules.duration import parse_duration


class NotifyConfigError(ValueError):
    """The notification configuration is invalid; the message is meant for the operator."""


class NotifySettings(BaseModel):
    """``[notify]`` in server.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alertmanager_urls: list[str] = Field(
        default_factory=list,
        description="Alertmanagers to send alerts to (each one gets every alert), e.g. "
        "http://alertmanager:9093; a path prefix is kept.",
    )
    alertmanager_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0, description="Longest one request to an Alertmanager may take."
    )
    receivers_file: Path | None = Field(
        default=None,
        description="Direct receivers (sites without Alertmanager): a YAML file in "
        "Alertmanager's format (route, receivers, inhibit_rules).",
    )
    external_url: str = Field(
        default="",
        description="dcmon's URL as people reach it; externalURL in webhooks (empty: the "
        "server's external_url).",
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RouteConfig(_Strict):
    receiver: str = ""
    group_by: list[str] | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    matchers: list[str] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteConfig] = Field(default_factory=list)


class WebhookConfig(_Strict):
    url: str | None = None
    url_file: Path | None = None
    send_resolved: bool = True
    max_alerts: Annotated[int, Field(ge=0)] = 0
    timeout: str = "10s"

    @model_validator(mode="after")
    def _one_url(self) -> WebhookConfig:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("give exactly one of url and url_file")
        return self

    def resolved_url(self) -> str:
        if self.url is not None:
            return self.url
        assert self.url_file is not None
        try:
            return self.url_file.read_text().strip()
        except OSError as exc:
            raise NotifyConfigError(f"url_file {self.url_file}: {exc.strerror}") from None


class AppriseConfig(_Strict):
    urls: list[str] = Field(min_length=1)
    send_resolved: bool = True


class ReceiverConfig(_Strict):
    name: str = Field(min_length=1)
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    apprise_configs: list[AppriseConfig] = Field(default_factory=list)


class InhibitRuleConfig(_Strict):
    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)


class ReceiversFile(_Strict):
    route: RouteConfig
    receivers: list[ReceiverConfig] = Field(min_length=1)
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)


@dataclass(frozen=True)
class DirectConfig:
    route: Route
    receivers: dict[str, ReceiverConfig]
    inhibit_rules: tuple[InhibitRule, ...]


def load_receivers(path: Path) -> DirectConfig:
    """Returns: the checked receivers file. Raises: NotifyConfigError."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise NotifyConfigError(f"receivers file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise NotifyConfigError(f"receivers file {path} is not valid YAML: {exc}") from None
    return parse_receivers(data, str(path))


def parse_receivers(data: object, where: str = "receivers file") -> DirectConfig:
    """Returns: the checked configuration in ``data`` (parsed YAML). Raises: NotifyConfigError."""
    try:
        spec = ReceiversFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{where}:"]
        for error in exc.errors(include_url=False):
            key = ".".join(str(part) for part in error["loc"]) or "(root)"
            lines.append(f"  {key}: {error['msg']}")
        raise NotifyConfigError("\n".join(lines)) from None
    receivers: dict[str, ReceiverConfig] = {}
    for receiver in spec.receivers:
        if receiver.name in receivers:
            raise NotifyConfigError(f"{where}: receiver {receiver.name!r} is defined twice")
        receivers[receiver.name] = receiver
    if spec.route.matchers:
        raise NotifyConfigError(f"{where}: route: the root route must not have matchers")
    if not spec.route.receiver:
        raise NotifyConfigError(f"{where}: route: the root route needs a receiver")
    root = _build(spec.route, None, 0, "route", where)
    for route in walk(root):
        if route.receiver not in receivers:
            raise NotifyConfigError(f"{where}: route uses undefined receiver {route.receiver!r}")
    rules = []
    for index, rule in enumerate(spec.inhibit_rules):
        try:
            rules.append(
                InhibitRule(
                    parse_matchers(rule.source_matchers),
                    parse_matchers(rule.target_matchers),
                    tuple(rule.equal),
                )
            )
        except MatcherError as exc:
            raise NotifyConfigError(f"{where}: inhibit_rules[{index}]: {exc}") from None
    return DirectConfig(root, receivers, tuple(rules))


def duration_s(text: str, where: str) -> float:
    try:
        return parse_duration(text) / 1000
    except ValueError as exc:
        raise NotifyConfigError(f"{where}: {exc}") from None


def _build(spec: RouteConfig, parent: Route | None, index: int, path: str, where: str) -> Route:
    def seconds(name: str, value: str | None) -> float | None:
        return None if value is None else duration_s(value, f"{where}: {path}.{name}")

    try:
        route = make_route(
            spec.receiver,
            matchers=parse_matchers(spec.matchers),
            group_by=spec.group_by,
            group_wait_s=seconds("group_wait", spec.group_wait),
            group_interval_s=seconds("group_interval", spec.group_interval),
            repeat_interval_s=seconds("repeat_interval", spec.repeat_interval),
            continue_matching=spec.continue_,
            parent=parent,
            index=index,
        )
    except (MatcherError, ValueError) as exc:
        if isinstance(exc, NotifyConfigError):
            raise
        raise NotifyConfigError(f"{where}: {path}: {exc}") from None
    if route.group_interval_s <= 0:
        raise NotifyConfigError(f"{where}: {path}.group_interval must be positive")
    children = tuple(
        _build(child, route, i, f"{path}.routes[{i}]", where) for i, child in enumerate(spec.routes)
    )
    return replace(route, routes=children)
