"""The asyncio HTTP adapter of the PKI client (aiohttp): performs :class:`rsu.pki.client.HttpPost`
and :class:`rsu.pki.client.Fetch` and drives a :class:`rsu.pki.client.PkiClient`.

* POST bodies go with ``Content-Type: application/x-its-request`` and ``Accept:
  application/x-its-response``; GETs fetch ECTL/CTL/CRL from the CPOC and DCs. The client
  checks statuses and content types; this layer only reports what came back.
* Every request has a total timeout; bodies are bounded (``max_body``); TLS with peer
  verification for ``https`` URLs (system trust store, or ``ssl_context``); up to 5 redirects.
* Retries with jittered exponential backoff, within one action: GETs on a timeout, a
  connection failure or a 502/503/504; POSTs only when the connection could not be made (the
  EA/AA never saw the request: resending the same encrypted bytes cannot double an
  enrolment). Anything else goes back to the client, which names it and backs off longer.
* Failures without an HTTP answer come back as ``HttpResult.error``: ``timeout``,
  ``connection``, ``tls``, ``too-large``, ``bad-url``.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import ssl
from collections.abc import Callable

import aiohttp

from rsu.clock import Clock
from rsu.pki.client import CT_REQUEST, JOBS, Fetch, HttpPost, HttpResult, Outcome, PkiClient

log = logging.getLogger(__name__)
RETRY_STATUSES = (502, 503, 504)


class HttpTransport:
    def __init__(
        self,
        *,
        timeout: float = 20.0,
        retries: int = 2,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        max_body: int = 4 << 20,
        ssl_context: ssl.SSLContext | None = None,
        jitter: Callable[[], float] | None = None,
        user_agent: str = "rsu-pki",
    ) -> None:
        self.timeout, self.retries = timeout, retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.max_body = max_body
        self.ssl_context = ssl_context
        self._jitter = jitter or _random.SystemRandom().random
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": self.user_agent})
        return self._session

    async def perform(self, action: HttpPost | Fetch) -> HttpResult:
        """Do one action (with retries); never raises for network trouble."""
        post = isinstance(action, HttpPost)
        attempt = 0
        while True:
            result, retryable = await self._once(action, post)
            if not retryable or attempt >= self.retries:
                return result
            delay = min(self.backoff_max, self.backoff_base * 2**attempt) * (0.5 + self._jitter() / 2)
            log.info(
                "PKI HTTP %s %s: %s, retry in %.1f s",
                "POST" if post else "GET",
                action.url,
                result.error or result.status,
                delay,
            )
            attempt += 1
            await asyncio.sleep(delay)

    async def _once(self, action: HttpPost | Fetch, post: bool) -> tuple[HttpResult, bool]:
        url = action.url
        if not url.startswith(("http://", "https://")):
            return HttpResult(action.id, error="bad-url", detail=f"{url!r} is not an http(s) URL"), False
        kwargs: dict = {"timeout": aiohttp.ClientTimeout(total=self.timeout), "max_redirects": 5}
        if url.startswith("https://"):
            kwargs["ssl"] = self.ssl_context if self.ssl_context is not None else True
        if isinstance(action, HttpPost):  # post
            kwargs["data"] = action.body
            kwargs["headers"] = {"Content-Type": action.content_type or CT_REQUEST, "Accept": action.accept}
        try:
            async with self._get_session().request("POST" if post else "GET", url, **kwargs) as resp:
                body = await resp.content.read(self.max_body + 1)
                if len(body) > self.max_body:
                    return HttpResult(
                        action.id, error="too-large", detail=f"{url}: body over {self.max_body} bytes"
                    ), False
                result = HttpResult(action.id, resp.status, resp.headers.get("Content-Type"), body)
                return result, (not post and resp.status in RETRY_STATUSES)
        except TimeoutError:
            return HttpResult(action.id, error="timeout", detail=f"{url}: no answer within {self.timeout} s"), not post
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError) as e:
            return HttpResult(action.id, error="tls", detail=f"{url}: {_short(e)}"), False
        except aiohttp.ClientConnectorError as e:
            return HttpResult(action.id, error="connection", detail=f"{url}: {_short(e)}"), True
        except aiohttp.InvalidURL as e:
            return HttpResult(action.id, error="bad-url", detail=f"{_short(e)}"), False
        except (aiohttp.ClientError, OSError) as e:
            return HttpResult(action.id, error="connection", detail=f"{url}: {_short(e)}"), not post


def _short(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:300]


async def settle(
    client: PkiClient, transport: HttpTransport, clock: Clock, *, max_rounds: int = 50, jobs: tuple[str, ...] = JOBS
) -> list[Outcome]:
    """Run the client until nothing is due now (or every wanted job failed once): the outcomes.

    For commands (``rsu pki enrol``...): one pass, no waiting for backoff.
    """
    outcomes: list[Outcome] = []
    for _ in range(max_rounds):
        actions = client.poll(clock.now(), jobs)
        if not actions:
            break
        results = await asyncio.gather(*(transport.perform(a) for a in actions))
        outcomes += [client.on_result(r, clock.now()) for r in results]
    return outcomes


async def run_forever(
    client: PkiClient,
    transport: HttpTransport,
    clock: Clock,
    stop: asyncio.Event,
    on_outcome: Callable[[Outcome], None] | None = None,
    max_sleep: float = 300.0,
    wake: asyncio.Event | None = None,
) -> None:
    """Drive the client until ``stop`` is set: act on what is due, then sleep until the next wakeup
    (or until ``wake`` is set: e.g. a clock that jumped, in tests)."""
    while not stop.is_set():
        for outcome in await settle(client, transport, clock):
            if on_outcome is not None:
                on_outcome(outcome)
        now = clock.now()
        delay = max(0.05, min(max_sleep, client.next_wakeup(now) - now))
        waiters = [asyncio.ensure_future(e.wait()) for e in (stop, wake) if e is not None]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        if wake is not None:
            wake.clear()
