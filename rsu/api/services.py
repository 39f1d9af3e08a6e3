"""What the daemon's HTTP API serves: the services layer that is current, its requests counted, and the
daemon's status.

:class:`ApiServices` implements :class:`rsu.api.app.ServicesFacade` over a
:class:`rsu.services.ports.CurrentServices` (so a reload that rebuilds the layer is followed by every
route, event streams included). Each accepted trigger / update / terminate is reported to
``on_request(service, message, action)`` (service label TLM, RLT, IVI, TLC, GPC; message the
message type, "?" when the answer does not tell); ``stats()`` answers with ``status()`` (GET /v1/status).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from rsu import catalog

if TYPE_CHECKING:
    from rsu.services.ports import CurrentServices
    from rsu.services.received import Subscription

RequestCounter = Callable[[str, str, str], None]  # (service, message, action)


class ApiServices:
    def __init__(self, services: CurrentServices, *, on_request: RequestCounter, status: Callable[[], dict]) -> None:
        self._services = services
        self._on_request = on_request
        self._status = status

    # ------------------------------------------------------------------ IS_Triggering (counted)
    def trigger(self, service: str, request: dict) -> dict:
        return self._counted("trigger", service, self._services.trigger(service, request))

    def update(self, service: str, ident: str, request: dict) -> dict:
        return self._counted("update", service, self._services.update(service, ident, request))

    def terminate(self, service: str, ident: str, request: dict | None = None) -> dict:
        return self._counted("terminate", service, self._services.terminate(service, ident, request))

    def list(self, service: str | None = None) -> builtins.list[dict]:
        return self._services.list(service)

    def get(self, service: str, ident: str) -> dict:
        return self._services.get(service, ident)

    def pending_requests(self) -> builtins.list[dict]:
        return self._services.pending_requests()

    # ------------------------------------------------------------------ IS_DataProviding
    def subscribe(
        self, services: Iterable[str] | None = None, types: Iterable[str] | None = None, last_id: int | None = None
    ) -> Subscription:
        return self._services.subscribe(services, types, last_id)

    # ------------------------------------------------------------------ status
    def stats(self) -> dict:
        return self._status()

    def _counted(self, action: str, service: str, result: dict) -> dict:
        entity = self._services.entity(service)
        kind = result.get("message") if isinstance(result, dict) else None
        if kind is None:  # the answer names the entry, not its message type
            ident = result.get("id") if isinstance(result, dict) else None
            entry = entity.entries.get(ident) if isinstance(ident, str) else None
            kinds = (
                [entry.kind] if entry is not None else [k for k in catalog.MESSAGES if k.service == entity.name.upper()]
            )
            kind = kinds[0].name if len(kinds) == 1 else None
        # service label as in every other metric: TLM, RLT, IVI, TLC, GPC
        self._on_request(entity.name.upper(), kind or "?", action)
        return result
