"""``workers: N`` (N > 1): a supervisor that runs N worker daemons, one shard of intersections each,
behind one API, one metrics endpoint and one controller feed (docs/scaling.md).

    rsu run --config rsu.yaml        (workers: 2)
      supervisor  api.host:api.port (the API, /metrics, /v1/status, /v1/health)
                  controller.host:controller.port (the JSON feed, routed by intersection)
        worker 0  127.0.0.1:api.port+1, feed port+1, state <state_dir>/workers/0   (+ IVI, GPC, TLC, receiving)
        worker 1  127.0.0.1:api.port+2, feed port+2, state <state_dir>/workers/1

Each worker is an ordinary ``rsu run`` (:class:`rsu.ops.daemon.Daemon`) on a configuration the
supervisor writes (:func:`rsu.ops.shards.worker_config`); it talks to the supervisor as it would to
systemd (``NOTIFY_SOCKET``: READY, RELOADING, STOPPING, WATCHDOG keepalives). The supervisor decides
nothing about messages: it routes requests and datagrams to the owner (:class:`rsu.ops.shards.ShardTable`)
and keeps the workers running.

Lifecycle: worker 0 starts first (it creates the test PKI the others share), then the others. A
worker that exits is started again (1 s, doubling to 30 s while it keeps failing); exit code 2 (invalid
configuration, damaged store) is not retried: the worker is *failed*, which /v1/health (503),
/v1/status and ``rsu_worker_up`` show. A worker whose keepalives stop for WORKER_WATCHDOG_S is killed
(SIGKILL) and started again. SIGHUP re-reads the file: valid -> the worker files are rewritten and
every worker reloads; invalid, or a change only a restart can apply (``workers``, the API or feed
address) -> logged, the daemon keeps running as it was. SIGTERM stops every worker, then the
supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rsu.ops import config as cfgmod
from rsu.ops import shards
from rsu.ops.config_core import ConfigError, ConfigIssue, load_yaml_file
from rsu.ops.systemd import Notifier

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web

log = logging.getLogger("rsu.workers")

READY_TIMEOUT_S = 120.0  # the first start may compile the ASN.1 modules
WORKER_WATCHDOG_S = 10.0  # keepalives every 5 s; none for 10 s: the worker is killed and started again
BACKOFF_S = (1.0, 30.0)
STABLE_S = 60.0  # a worker that ran this long starts again from the shortest back-off
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade", "te", "trailer"}


class Worker:
    """One worker process and what the supervisor knows of it."""

    def __init__(self, index: int, api_port: int, feed_port: int | None, config_file: Path) -> None:
        self.index = index
        self.api_port = api_port
        self.feed_port = feed_port
        self.config_file = config_file
        self.proc: asyncio.subprocess.Process | None = None
        self.state = "stopped"  # starting | ready | reloading | restarting | failed | stopped
        self.restarts = 0
        self.last_exit: int | None = None
        self.started = 0.0
        self.last_keepalive = 0.0
        self.ready = asyncio.Event()
        self.sock: socket.socket | None = None  # its NOTIFY_SOCKET
        self.address = ""

    @property
    def process(self) -> asyncio.subprocess.Process:
        """The running (or last) process; only used once the worker was started."""
        assert self.proc is not None, "worker not started"
        return self.proc

    def info(self) -> dict[str, Any]:
        return {
            "worker": self.index,
            "pid": self.proc.pid if self.proc else None,
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "api_port": self.api_port,
            "feed_port": self.feed_port,
        }


class Supervisor:
    def __init__(
        self,
        config: cfgmod.Config,
        *,
        config_path: str | None,
        overrides: tuple[str, ...] = (),
        notifier: Notifier | None = None,
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.config = config
        self.config_path = config_path
        self.overrides = tuple(overrides)
        self.notifier = notifier or Notifier()
        self.count = shards.resolve_count(config.workers)
        self.dir = shards.workers_dir(config.state_path)
        self.table = shards.ShardTable(shards.table_path(config.state_path), self.count)
        ctl = config.integrations.controller
        self.workers = [
            Worker(
                k,
                shards.worker_port(config.api.port, k),
                shards.worker_port(ctl.port, k) if ctl is not None and ctl.port else None,
                self.dir / str(k) / "rsu.yaml",
            )
            for k in range(self.count)
        ]
        self.registry = CollectorRegistry()
        self.up = Gauge(
            "rsu_worker_up", "1 while the worker serves (READY), else 0", ["worker"], registry=self.registry
        )
        self.restarts = Counter(
            "rsu_worker_restarts",
            "worker processes started again after they exited or were killed",
            ["worker"],
            registry=self.registry,
        )
        self.routed = Counter(
            "rsu_worker_feed_routed",
            "controller-feed datagrams forwarded to the worker owning their intersection",
            ["worker"],
            registry=self.registry,
        )
        self.unrouted = Counter(
            "rsu_worker_feed_dropped",
            "controller-feed datagrams dropped because the worker "
            "owning their intersection was not ready (starting again)",
            ["worker"],
            registry=self.registry,
        )
        self.guard_metrics = _GuardMetrics()
        self.guard: Any = None  # rsu.api.guard.Guard in front of the supervisor's API (made with it)
        self._tokens: dict[int, str] = {}  # worker -> the bearer token the supervisor shows it
        self.reloads: dict[str, Any] = {"ok": 0, "rejected": 0, "last_error": None}
        self._stop = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._runner: web.AppRunner | None = None
        self._feed: asyncio.DatagramTransport | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock_fd: int | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP client towards the workers (open between start and stop)."""
        assert self._session is not None, "supervisor not started"
        return self._session

    # ------------------------------------------------------------------ configuration
    def _raw(self) -> dict:
        data = {} if self.config_path is None else (load_yaml_file(self.config_path) or {})
        data, issues = cfgmod.apply_overrides(data, self.overrides)
        if issues:
            raise ConfigError(issues, self.config_path)
        return data

    def _write_configs(self, data: dict, config: cfgmod.Config) -> None:
        """Place the configured intersections, then write each worker's file (atomically)."""
        for key in shards.configured_keys(config):
            if self.table.owner(key) is None:
                self.table.place([key])
        for w in self.workers:
            w.config_file.parent.mkdir(parents=True, exist_ok=True)
            text = yaml.safe_dump(
                shards.worker_config(data, config, w.index, self.table.owned_by(w.index)), sort_keys=False
            )
            tmp = w.config_file.with_suffix(".tmp")
            tmp.write_text("# written by the rsu supervisor from " + str(self.config_path) + "; do not edit\n" + text)
            os.replace(tmp, w.config_file)

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        from rsu.ops.runner import serve

        await serve(self.start, self.reload, self.stop, self._stop)

    async def start(self) -> None:
        import aiohttp

        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another rsu supervisor runs on {self.dir}") from None
        needs = shards.config_issues(self.config, max(2, self.count))  # also for one worker behind the supervisor
        if needs:
            raise ConfigError([ConfigIssue(path, reason) for path, reason in needs], self.config_path)
        beyond = self.table.beyond()
        if beyond:
            raise ConfigError(
                [
                    ConfigIssue(
                        "workers",
                        f"{self.count}, but worker {w} owns intersection {k} (its "
                        f"messages are in {self.dir / str(w)}); keep workers at "
                        f"{max(beyond.values()) + 1} or more",
                    )
                    for k, w in sorted(beyond.items())
                ],
                self.config_path,
            )
        self._write_configs(self._raw(), self.config)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        for w in self.workers:
            self._open_notify(w)
        first, *others = self.workers
        await self._spawn(first)
        await self._wait_ready(first)  # it creates the shared test PKI; then the others start together
        for w in others:
            await self._spawn(w)
        await asyncio.gather(*(self._wait_ready(w) for w in others))
        self._tasks = [asyncio.create_task(self._watch(w), name=f"rsu-worker-{w.index}") for w in self.workers]
        self._tasks.append(asyncio.create_task(self._watchdog_loop(), name="rsu-worker-watchdog"))
        self._tasks.append(asyncio.create_task(self.notifier.watchdog_loop(), name="rsu-watchdog"))
        await self._start_feed()
        await self._start_api()
        log.info(
            "rsu supervisor running %d workers: API http://%s:%d",
            self.count,
            self.config.api.host,
            self.config.api.port,
        )
        self.notifier.ready(self._status_line())

    async def stop(self) -> None:
        self._stopping = True
        self.notifier.stopping()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._feed is not None:
            self._feed.close()
            self._feed = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                w.proc.terminate()
        for w in self.workers:
            if w.proc is not None:
                try:
                    await asyncio.wait_for(w.proc.wait(), 15)
                except TimeoutError:
                    w.process.kill()
                    await w.proc.wait()
            w.state = "stopped"
            self.up.labels(str(w.index)).set(0)
            if w.sock is not None:
                asyncio.get_running_loop().remove_reader(w.sock.fileno())
                w.sock.close()
        if self._session is not None:
            await self._session.close()
        if self.guard is not None:
            self.guard.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self.notifier.close()
        log.info("stopped")

    async def reload(self) -> bool:
        """SIGHUP: validate the file again; if it can be applied without a restart, rewrite the workers'
        files and reload every worker (each keeps running on its old file if it refuses the new one)."""
        self.notifier.reloading()
        try:
            new = cfgmod.load(self.config_path, self.overrides)
            data = self._raw()
            problems = []
            if shards.resolve_count(new.workers) != self.count:
                problems.append(ConfigIssue("workers", "a new number of workers needs a restart"))
            if (new.api.host, new.api.port) != (self.config.api.host, self.config.api.port):
                problems.append(ConfigIssue("api", "a new address needs a restart when workers > 1"))
            old_ctl, new_ctl = self.config.integrations.controller, new.integrations.controller
            if (old_ctl and (old_ctl.host, old_ctl.port)) != (new_ctl and (new_ctl.host, new_ctl.port)):
                problems.append(
                    ConfigIssue("integrations.controller", "a new address needs a restart when workers > 1")
                )
            if problems:
                raise ConfigError(problems, self.config_path)
        except ConfigError as e:
            for issue in e.issues:
                log.error("reload rejected: %s: %s", self.config_path, issue)
            self.reloads["rejected"] += 1
            self.reloads["last_error"] = str(e)
            self.notifier.ready("reload rejected, running on the previous configuration")
            return False
        self.config = new
        if self.guard is not None:
            self.guard.configure(new.api.host, new.api.tls, new.api.auth, new.api.audit)
        self._write_configs(data, new)
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                w.proc.send_signal(signal.SIGHUP)
        self.reloads["ok"] += 1
        self.reloads["last_error"] = None
        log.info("configuration reloaded from %s by %d workers", self.config_path, self.count)
        self.notifier.ready(self._status_line())
        return True

    def _status_line(self) -> str:
        ready = sum(w.state == "ready" for w in self.workers)
        return f"{ready}/{self.count} workers ready; serving on {self.config.api.host}:{self.config.api.port}"

    # ------------------------------------------------------------------ workers
    def _open_notify(self, w: Worker) -> None:
        w.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        w.address = f"@rsu-worker-{os.getpid()}-{w.index}-{os.urandom(4).hex()}"  # abstract: no path to clean up
        w.sock.bind("\0" + w.address[1:])
        asyncio.get_running_loop().add_reader(w.sock.fileno(), self._on_notify, w)

    def _on_notify(self, w: Worker) -> None:
        while w.sock is not None:
            try:
                data = w.sock.recv(4096)
            except (BlockingIOError, OSError):
                return
            fields = dict(line.split("=", 1) for line in data.decode(errors="replace").splitlines() if "=" in line)
            w.last_keepalive = time.monotonic()
            if fields.get("READY") == "1":
                w.state = "ready"
                w.ready.set()
                self.up.labels(str(w.index)).set(1)
            elif fields.get("RELOADING") == "1":
                w.state = "reloading"
            elif fields.get("STOPPING") == "1":
                w.state = "stopping"
                self.up.labels(str(w.index)).set(0)

    def _worker_token(self, w: Worker) -> None:
        """A fresh admin token in the worker's token store, shown by the supervisor only (the worker's API
        takes nothing else); the supervisor's earlier ones are revoked."""
        from rsu.api.auth import TokenStore
        from rsu.clock import SystemClock

        store = TokenStore(w.config_file.parent / "api-tokens.json", SystemClock())
        for entry in store.list():
            if entry.get("name") == "rsu-supervisor":
                store.revoke(entry["id"])
        self._tokens[w.index] = store.add("admin", "rsu-supervisor", 5 * 365 * 86400)[1]

    def _auth_header(self, worker: int) -> dict[str, str]:
        token = self._tokens.get(worker)
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _spawn(self, w: Worker) -> None:
        env = dict(
            os.environ,
            NOTIFY_SOCKET=w.address,
            WATCHDOG_USEC=str(int(WORKER_WATCHDOG_S * 1e6)),
            RSU_WORKER=str(w.index),
        )
        env.pop("WATCHDOG_PID", None)
        self._worker_token(w)
        w.ready.clear()
        w.state = "starting"
        w.started = w.last_keepalive = time.monotonic()
        w.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rsu", "run", "--config", str(w.config_file), env=env, preexec_fn=_die_with_parent
        )
        log.info("worker %d started (pid %d)", w.index, w.process.pid)

    async def _wait_ready(self, w: Worker) -> None:
        waiter = asyncio.ensure_future(w.ready.wait())
        exited = asyncio.ensure_future(w.process.wait())
        done, _ = await asyncio.wait({waiter, exited}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        exited.cancel()
        if not w.ready.is_set():
            log.error(
                "worker %d did not become ready (%s)",
                w.index,
                f"exit code {w.process.returncode}" if w.process.returncode is not None else "timeout",
            )

    async def _watch(self, w: Worker) -> None:
        """Start the worker again whenever it exits (except exit code 2: failed, waiting for the operator)."""
        failures = 0
        while True:
            code = await w.process.wait()
            w.last_exit = code
            self.up.labels(str(w.index)).set(0)
            if self._stopping:
                return
            if code == 2:
                w.state = "failed"
                log.error(
                    "worker %d exited with code 2 (invalid configuration or damaged store): not restarted; "
                    "fix it, then restart rsu",
                    w.index,
                )
                self.notifier.status(self._status_line())
                return
            failures = 0 if time.monotonic() - w.started > STABLE_S else failures + 1
            delay = min(BACKOFF_S[0] * 2 ** max(0, failures - 1), BACKOFF_S[1])
            w.state = "restarting"
            log.error("worker %d exited (code %s); starting it again in %.0f s", w.index, code, delay)
            self.notifier.status(self._status_line())
            await asyncio.sleep(delay)
            w.restarts += 1
            self.restarts.labels(str(w.index)).inc()
            await self._spawn(w)
            await self._wait_ready(w)
            self.notifier.status(self._status_line())

    async def _watchdog_loop(self) -> None:
        while True:
            await asyncio.sleep(WORKER_WATCHDOG_S / 4)
            now = time.monotonic()
            for w in self.workers:
                if (
                    w.state in ("ready", "reloading")
                    and w.process.returncode is None
                    and now - w.last_keepalive > WORKER_WATCHDOG_S
                ):
                    log.error("worker %d sent no keepalive for %.0f s: killed", w.index, now - w.last_keepalive)
                    w.process.kill()

    # ------------------------------------------------------------------ the controller feed
    async def _start_feed(self) -> None:
        ctl = self.config.integrations.controller
        if ctl is None or not ctl.port:
            return
        sup = self

        class _Feed(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                sup._route_datagram(data)

        self._feed, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            _Feed, local_addr=(ctl.host, ctl.port)
        )
        with contextlib.suppress(OSError):
            self._feed.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def _route_datagram(self, data: bytes) -> None:
        worker = self._feed_owner(data)
        w = self.workers[worker]
        if w.state not in ("ready", "reloading"):
            self.unrouted.labels(str(worker)).inc()
            return
        self.routed.labels(str(worker)).inc()
        if self._feed is not None and w.feed_port is not None:
            self._feed.sendto(data, ("127.0.0.1", w.feed_port))

    def _feed_owner(self, data: bytes) -> int:
        """The owner of a datagram's intersection (the feed's configured ones are placed at start);
        an unknown or missing one goes to worker 0, whose feed drops and counts it."""
        key = shards.feed_key(data)
        owner = self.table.owner(key) if key is not None else None
        return 0 if owner is None else owner

    # ------------------------------------------------------------------ the API
    async def _start_api(self) -> None:
        from aiohttp import web

        from rsu.api import extras
        from rsu.api.guard import ROUTE_RULES, Guard, admin_routes
        from rsu.clock import SystemClock

        api: Any = self.config.api  # the frozen Api section (extras.ApiSection is its read-write protocol)
        if self.guard is None:  # as the daemon's: tokens, lockout and audit in <state_dir>, for the supervisor's life
            self.guard = Guard(
                state_dir=self.config.state_path,
                clock=SystemClock(),
                host=api.host,
                tls=api.tls,
                auth=api.auth,
                audit=api.audit,
                metrics=self.guard_metrics,
            )
        app = web.Application(client_max_size=4 << 20, middlewares=[self.guard.middleware])
        own = [
            ("GET", "/metrics", self._metrics),
            ("GET", "/v1/status", self._status),
            ("GET", "/v1/health", self._health),
            ("GET", "/v1/messages", self._list),
            ("GET", "/v1/{service}/messages", self._list),
            ("POST", "/v1/{service}/messages", self._trigger),
            ("POST", "/v1/integrations/controller/feed", self._feed_http),
        ]
        for method in ("GET", "PUT", "DELETE"):
            own.append((method, "/v1/{service}/messages/{id}", self._by_id))
        own.append(("POST", "/v1/{service}/messages/{id}/terminate", self._by_id))
        for method, path, handler in own:
            app.router.add_route(method, path, handler)
        taken = {(method, path) for method, path, _ in own}
        for route in admin_routes(self.guard, self.reload, None):  # tokens, lockout, whoami; reload = the whole daemon
            if route.path == "/v1/admin/pki/check":
                continue  # the PKI client runs in worker 0: forwarded there below
            app.router.add_route(route.method, route.path, route.handler)
            taken.add((route.method, route.path))
        for method, path in sorted(ROUTE_RULES):  # every other route of the daemon, under its own rule: worker 0
            if (method, path) not in taken and method != "HEAD":
                app.router.add_route(method, path, lambda request: self._forward(request, 0))
        app.router.add_route("*", "/{tail:.*}", lambda request: self._forward(request, 0))
        self._runner = await extras.start(app, api, on_close=lambda reason: None)

    async def _forward(
        self, request, worker: int, body: bytes | None = None, on_status: Callable[[int], None] | None = None
    ):
        """The request as it came, to ``worker``; its answer streamed back (server-sent events too).
        ``on_status(status)`` runs before the answer goes back."""
        import aiohttp
        from aiohttp import web

        w = self.workers[worker]
        data = await request.read() if body is None else body
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP and k.lower() != "authorization"}
        headers.update(self._auth_header(worker))  # the guard has checked the client; the worker checks us
        url = f"http://127.0.0.1:{w.api_port}{request.rel_url}"
        try:
            async with self.session.request(
                request.method, url, data=data or None, headers=headers, allow_redirects=False
            ) as r:
                if on_status is not None:
                    on_status(r.status)
                resp = web.StreamResponse(
                    status=r.status, headers={k: v for k, v in r.headers.items() if k.lower() not in HOP}
                )
                await resp.prepare(request)
                async for chunk in r.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except aiohttp.ClientError as e:
            return self._unavailable(worker, str(e))

    def _unavailable(self, worker: int, why: str):
        return _error("worker_unavailable", "", f"worker {worker} is {self.workers[worker].state} ({why})", 503)

    async def _trigger(self, request):

        body = await request.read()
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            obj = None  # worker 0 answers the error
        keys = shards.payload_keys(request.match_info["service"], obj)
        new = [k for k in keys if self.table.owner(k) is None]
        try:
            worker = self.table.place(keys) if keys else 0
        except shards.ShardsFull as e:
            return _error("capacity", "payload", str(e), 503)
        if worker is None:
            owners = {k: self.table.owner(k) for k in keys}
            return _error(
                "validation",
                "payload",
                f"the intersections belong to different workers ({owners}); send them separately",
                422,
            )

        def refused(status: int) -> None:  # the placement goes too: the table only holds what an owner took
            if new and status >= 400:
                self.table.forget(new)

        return await self._forward(request, worker, body, on_status=refused)

    async def _by_id(self, request):
        keys = shards.id_keys(request.match_info["service"], request.match_info["id"])
        owner = self.table.owner(keys[0]) if keys else None
        return await self._forward(request, owner or 0)

    async def _feed_http(self, request):
        body = await request.read()
        return await self._forward(request, self._feed_owner(body), body)

    async def _get_json(self, worker: int, path: str) -> Any:
        import aiohttp

        w = self.workers[worker]
        try:
            async with self.session.get(f"http://127.0.0.1:{w.api_port}{path}", headers=self._auth_header(worker)) as r:
                return await r.json() if r.status < 400 else None
        except (aiohttp.ClientError, ValueError):
            return None

    async def _get_text(self, worker: int, path: str) -> str | None:
        import aiohttp

        try:
            async with self.session.get(
                f"http://127.0.0.1:{self.workers[worker].api_port}{path}", headers=self._auth_header(worker)
            ) as r:
                return await r.text() if r.status < 400 else None
        except aiohttp.ClientError:
            return None

    async def _list(self, request):
        from aiohttp import web

        path = str(request.rel_url)
        answers = await asyncio.gather(*(self._get_json(w.index, path) for w in self.workers))
        if answers[0] is None:  # worker 0 down, or an error it reports (unknown service): its answer
            return await self._forward(request, 0)
        messages = [m for a in answers if a for m in a.get("messages", [])]
        return web.json_response({"messages": messages})

    def status(self) -> dict[str, Any]:
        return {
            "workers": [dict(w.info(), intersections=sorted(self.table.owned_by(w.index))) for w in self.workers],
            "reloads": self.reloads,
        }

    async def _status(self, request):
        from aiohttp import web

        answers = await asyncio.gather(*(self._get_json(w.index, "/v1/status") for w in self.workers))
        out = dict(answers[0] or {})  # worker 0's view (station, security, PKI), with every worker's messages
        out["messages"] = [
            dict(m, worker=w.index) for w, a in zip(self.workers, answers) if a for m in a.get("messages", [])
        ]
        out.update(self.status())
        for info, answer in zip(out["workers"], answers):
            info["status"] = {k: v for k, v in answer.items() if k != "messages"} if answer else None
        return web.json_response(out)

    async def _health(self, request):
        from aiohttp import web

        ok = all(w.state == "ready" for w in self.workers)
        return web.json_response(
            {"status": "ok" if ok else "degraded", "workers": {str(w.index): w.state for w in self.workers}},
            status=200 if ok else 503,
        )

    async def _metrics(self, request):
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        texts = await asyncio.gather(*(self._get_text(w.index, "/metrics") for w in self.workers))
        texts_by = {str(w.index): t for w, t in zip(self.workers, texts) if t is not None}
        texts_by["supervisor"] = generate_latest(self.guard_metrics.registry).decode()  # its API guard's counts
        body = merge_expositions(texts_by)
        body += generate_latest(self.registry).decode()
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _GuardMetrics:
    """What the supervisor's API guard counts (rsu.api.guard.GuardMetrics), under the daemon's metric names;
    exposed with ``worker="supervisor"`` next to the workers' series of the same names."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter

        self.registry = r = CollectorRegistry()
        self._counters = {
            "auth_failure": Counter(
                "rsu_api_auth_failures", "Failed API authentications, by reason", ["reason"], registry=r
            ),
            "api_refused": Counter(
                "rsu_api_requests_refused", "API requests refused before their handler ran", ["reason"], registry=r
            ),
            "ban_started": Counter("rsu_api_bans", "Bans started by the lockout", ["kind"], registry=r),
            "rate_limited": Counter(
                "rsu_api_rate_limited", "State-changing API requests refused by the rate limit", ["action"], registry=r
            ),
            "audited": Counter(
                "rsu_audit_entries", "Lines written to the audit log, by action", ["action"], registry=r
            ),
            "limit_hit": Counter(
                "rsu_limit_hits", "A bound on state other stations can grow was reached", ["limit"], registry=r
            ),
        }

    def auth_failure(self, reason: str) -> None:
        self._counters["auth_failure"].labels(reason).inc()

    def api_refused(self, reason: str) -> None:
        self._counters["api_refused"].labels(reason).inc()

    def ban_started(self, permanent: bool) -> None:
        self._counters["ban_started"].labels("permanent" if permanent else "timed").inc()

    def rate_limited(self, action: str) -> None:
        self._counters["rate_limited"].labels(action).inc()

    def audited(self, action: str) -> None:
        self._counters["audited"].labels(action).inc()

    def limit_hit(self, limit: str) -> None:
        self._counters["limit_hit"].labels(limit).inc()


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies, even by kill -9 (Linux
    PR_SET_PDEATHSIG), so no orphan keeps a worker's ports; under systemd the cgroup also does it."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG


def _error(code: str, path: str, reason: str, status: int):
    """An error answer in the API's own form."""
    from rsu.api.app import _error as api_error

    return api_error(code, path, reason, status)


_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def merge_expositions(texts: dict[str, str]) -> str:
    """Prometheus text expositions of the workers -> one, every sample labelled ``worker="k"``; the
    samples of a metric family stay together (one HELP/TYPE block per family)."""
    blocks: dict[str, list[str]] = {}
    for worker, text in texts.items():
        name = None
        for line in text.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                name = line.split()[2]
                if line.startswith("# HELP ") and name in blocks:
                    continue
                block = blocks.setdefault(name, [])
                if line not in block:
                    block.append(line)
                continue
            if not line or line.startswith("#"):
                continue
            m = _NAME.match(line)
            if m is None:
                continue
            rest = line[m.end() :]
            label = f'worker="{worker}"'
            line = f"{m.group()}{{{label},{rest[1:]}" if rest.startswith("{") else f"{m.group()}{{{label}}}{rest}"
            blocks.setdefault(name or m.group(), []).append(line)
    return "".join(line + "\n" for block in blocks.values() for line in block)


def run(config: cfgmod.Config, config_path: str | None, overrides: tuple[str, ...] | list[str] = ()) -> int:
    """``rsu run`` with workers > 1 (called by :func:`rsu.ops.runner.run`); its exit codes."""
    supervisor = Supervisor(config, config_path=config_path, overrides=tuple(overrides))
    try:
        asyncio.run(supervisor.run())
    except KeyboardInterrupt:
        pass
    except ConfigError as e:
        for issue in e.issues:
            log.critical("cannot start: %s", issue)
        return 2
    except Exception as e:  # noqa: BLE001 - one log line, exit 1
        log.critical("cannot start: %s: %s", type(e).__name__, e)
        return 1
    return 0
