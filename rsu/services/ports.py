"""The services layer's ports: what it offers to the layers above it (the HTTP API, the integrations).

* :class:`Triggering` (IS_Triggering): trigger / update / terminate an entry, list and read entries,
  the pending TLC requests. Takes JSON objects, gives JSON objects; refusals raise ServiceError.
* :class:`SpatTriggering`: the traffic-controller feed's value port (a SPAT state as a validated Python value).
* :class:`DataProviding` (IS_DataProviding): a subscription to received messages and ended entries.
* :class:`ServiceStats`: the layer's counters (entries, scheduler, received hub).

:class:`rsu.services.layer.ServiceLayer` implements all four. A daemon rebuilds its layer on a
reload, so long-lived users (the API, the integrations) hold a :class:`CurrentServices`: it passes
each call, method by method, to the layer that is current at the time of the call. Subscriptions
live in the daemon's one :class:`rsu.services.received.ReceivedHub`, which every rebuilt layer
publishes on, so a subscriber keeps receiving across a reload.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rsu.services.base import ServiceEntity
    from rsu.services.layer import ServiceLayer
    from rsu.services.received import Subscription


class Triggering(Protocol):
    """IS_Triggering: requests on the store-and-repeat table (``service``: tlm, rlt, ivi, tlc, gpc or a
    message name)."""

    def trigger(self, service: str, request: dict[str, Any]) -> dict[str, Any]: ...
    def update(self, service: str, ident: str, request: dict[str, Any]) -> dict[str, Any]: ...
    def terminate(self, service: str, ident: str, request: dict[str, Any] | None = None) -> dict[str, Any]: ...
    def list(self, service: str | None = None) -> builtins.list[dict[str, Any]]: ...
    def get(self, service: str, ident: str) -> dict[str, Any]: ...
    def pending_requests(self) -> builtins.list[dict[str, Any]]: ...


class SpatTriggering(Protocol):
    """The value port of the traffic-controller integrations: ``trigger("tlm", {"payload": <JER>})`` for a SPAT
    body that its maker built as a Python value (:mod:`rsu.codec.values` form) and validated at its own edge
    (:func:`rsu.integrations.spat.spat_value`): the service takes it as it is, without JER or a second
    validation; an intersection's ``revision`` may be left out (the active MAPEM's). Same answer and errors."""

    def trigger_spat(self, spat: dict[str, Any]) -> dict[str, Any]: ...


class DataProviding(Protocol):
    """IS_DataProviding: events of received messages (``type`` received) and of our entries (ended,
    service), from ``last_id`` on when given."""

    def subscribe(
        self, services: Iterable[str] | None = None, types: Iterable[str] | None = None, last_id: int | None = None
    ) -> Subscription: ...


class ServiceStats(Protocol):
    def stats(self) -> dict[str, Any]: ...


class CurrentServices:
    """Triggering, DataProviding and ServiceStats of the layer ``current()`` returns at each call (the
    daemon's layer, which a reload replaces)."""

    def __init__(self, current: Callable[[], ServiceLayer]) -> None:
        self._current = current

    def entity(self, service: str) -> ServiceEntity:
        """The entity that answers for ``service`` (raises ServiceError unknown_service)."""
        return self._current().entity(service)

    def trigger(self, service: str, request: dict[str, Any]) -> dict[str, Any]:
        return self._current().trigger(service, request)

    def trigger_spat(self, spat: dict[str, Any]) -> dict[str, Any]:
        return self._current().trigger_spat(spat)

    def update(self, service: str, ident: str, request: dict[str, Any]) -> dict[str, Any]:
        return self._current().update(service, ident, request)

    def terminate(self, service: str, ident: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._current().terminate(service, ident, request)

    def list(self, service: str | None = None) -> builtins.list[dict[str, Any]]:
        return self._current().list(service)

    def get(self, service: str, ident: str) -> dict[str, Any]:
        return self._current().get(service, ident)

    def pending_requests(self) -> builtins.list[dict[str, Any]]:
        return self._current().pending_requests()

    def subscribe(
        self, services: Iterable[str] | None = None, types: Iterable[str] | None = None, last_id: int | None = None
    ) -> Subscription:
        return self._current().subscribe(services, types, last_id)

    def stats(self) -> dict[str, Any]:
        return self._current().stats()
