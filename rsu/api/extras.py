"""The routes the daemon adds to the API application besides IS_Triggering and IS_DataProviding, and the
port a running API is bound to.

* :func:`integration_routes`: every route an integration may serve (rsu.integrations.routes.ROUTES),
  each answered by the integrations ``current()`` returns at request time, so a reload that changes the
  integrations does not restart the API (and cut its event streams).
* :func:`metrics_handler`: GET /metrics, the Prometheus exposition after ``refresh()`` (the gauges).
* :func:`health_handler`: GET /v1/health, ``{"status": "ok", "version"}``.
* :func:`start`: serve the application on the ``api:`` section's address and bounds (a warning when the
  open-file limit is below what ``max_connections`` needs); :func:`set_limits`: new bounds, same server.
* :func:`bound_port`: the TCP port of a runner's first listening socket (``port`` 0 asks for a free one).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol, cast

from aiohttp import web

from rsu import __version__

if TYPE_CHECKING:
    from rsu.api.auth_config import AuthSettings, TlsSettings
    from rsu.api.limits import ConnectionLimits, ConnectionTable

log = logging.getLogger("rsu.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class IntegrationRoutes(Protocol):
    """What the API needs from the integrations: the routes they serve now."""

    def routes(self) -> list[web.RouteDef]: ...


def routes_of_current(
    paths: Iterable[tuple[str, str]], current: Callable[[], IntegrationRoutes | None], missing: str
) -> list[web.RouteDef]:
    """One route per (method, path) of ``paths``, each answered by the route of ``current().routes()`` with
    that method and path at request time (a reload may replace what ``current()`` gives without restarting
    the API); 404 with ``missing`` when nothing running serves it."""

    def forward(method: str, path: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            part = current()
            for route in part.routes() if part is not None else []:
                if route.method == method and route.path == path:
                    return await route.handler(request)
            raise web.HTTPNotFound(reason=f"{path}: {missing}")

        return handler

    return [web.route(method, path, forward(method, path)) for method, path in paths]


def integration_routes(current: Callable[[], IntegrationRoutes | None]) -> list[web.RouteDef]:
    """One route per (method, path) an integration may serve, forwarded to ``current().routes()``; 404 when
    no running integration serves it."""
    from rsu.integrations.routes import ROUTES

    return routes_of_current(ROUTES, current, "that integration is not configured")


def metrics_handler(refresh: Callable[[], None], exposition: Callable[[], bytes], content_type: str) -> Handler:
    """GET /metrics: ``refresh()`` the gauges, then answer ``exposition()``."""

    async def handler(request: web.Request) -> web.Response:
        refresh()
        return web.Response(body=exposition(), headers={"Content-Type": content_type})

    return handler


async def health_handler(request: web.Request) -> web.Response:
    """GET /v1/health."""
    return web.json_response({"status": "ok", "version": __version__})


def bound_port(runner: web.AppRunner | None, default: int) -> int:
    """The port ``runner`` listens on (``default`` when it is not serving)."""
    if runner is None:
        return default
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return server.sockets[0].getsockname()[1]
    return default


def open_connections(runner: web.AppRunner | None) -> int | None:
    """How many connections the API ``runner`` has open now (None when it is not serving)."""
    if runner is None:
        return None
    return len(_table(runner))


class ApiSection(Protocol):
    """What :func:`start` reads of the configuration's ``api:`` section."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def tls(self) -> TlsSettings | None: ...
    @property
    def auth(self) -> AuthSettings: ...

    def limits(self) -> ConnectionLimits: ...


async def start(app: web.Application, api: ApiSection, on_close: Callable[[str], None]) -> web.AppRunner:
    """Serve ``app`` on ``api.host``:``api.port`` within ``api.limits()`` (:func:`rsu.api.app.serve`), over
    TLS 1.3 when ``api.tls`` is set (a client certificate required when it is the only way in)."""
    from rsu.api.app import serve
    from rsu.api.limits import ensure_nofile
    from rsu.api.tls import server_context

    tls = api.tls
    ssl_context = (
        None
        if tls is None
        else server_context(
            tls.cert_file,
            tls.key_file,
            tls.client_ca_file,
            require_client_certificate=tls.client_ca_file is not None and not api.auth.tokens,
        )
    )

    nofile, need = ensure_nofile(api.limits())
    if nofile < need:
        log.warning(
            "open-file limit %d is below the %d that api.max_connections %d needs (raise LimitNOFILE "
            "or lower api.max_connections)",
            nofile,
            need,
            api.max_connections,
        )
    return await serve(app, api.host, api.port, api.limits(), on_close=on_close, ssl_context=ssl_context)


def set_limits(runner: web.AppRunner, limits: ConnectionLimits) -> None:
    """New connection bounds for a running API: same server, same event streams."""
    _table(runner).limits = limits


def _table(runner: web.AppRunner) -> ConnectionTable:
    from rsu.api.app import TABLE_KEY

    return cast("ConnectionTable", runner.app[TABLE_KEY])
