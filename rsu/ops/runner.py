"""``rsu run``: load the configuration, check the host, run the daemon until it is stopped.

Exit codes: 0 stopped cleanly; 1 the host refuses this configuration (a port in use, a directory
missing: may be gone at the next try) or the start failed; 2 an invalid configuration or a damaged
store (waits for the operator: systemd's RestartPreventExitStatus, no restart loop).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from rsu.ops import config as cfgmod
from rsu.ops import logging as rlog
from rsu.ops.config_core import ConfigError

log = logging.getLogger("rsu.daemon")

SETTLE_GC_AFTER_S = 1.0  # settle_gc this long after start-up


async def serve(
    start: Callable[[], Awaitable[None]],
    reload: Callable[[], Awaitable[bool]],
    stop: Callable[[], Awaitable[None]],
    stopped: asyncio.Event,
) -> None:
    """Start, then serve until SIGTERM/SIGINT (``stopped`` set); SIGHUP reloads. The daemon's and the
    supervisor's (``workers:``) main loop."""
    loop = asyncio.get_running_loop()
    await start()
    if not gc.isenabled():  # rsu run turned it off for the start-up; not before: ~40 ms would hold the API
        loop.call_later(SETTLE_GC_AFTER_S, settle_gc)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload()))
    try:
        await stopped.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await stop()


def settle_gc() -> None:
    """Once started (a second after): one full collection, then what remains (modules, configuration, the compiled
    schema, the restored entries) moves to the permanent generation (gc.freeze), so later collections do
    not walk it again and forked processes do not copy its pages by touching it; collection is then on
    (``rsu run`` keeps it off while the daemon starts)."""
    gc.collect()
    gc.freeze()
    gc.enable()


def run(config_path: str | None, overrides: tuple[str, ...] | list[str] = ()) -> int:
    """``rsu run``: the configuration (``--set`` overrides on top) is loaded and run until SIGTERM/SIGINT."""
    try:
        config = cfgmod.load(config_path, overrides)
    except ConfigError as e:
        print(f"rsu: error: invalid configuration ({e.source or 'config'}):", file=sys.stderr)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    from rsu.ops.preflight import host_issues

    found = host_issues(config, running_rsu_is_fine=False)
    if any(h.fatal for h in found):
        print(
            f"rsu: error: cannot start with this configuration on this host ({config_path or 'embedded default'}):",
            file=sys.stderr,
        )
        for h in found:
            print(f"  {h.issue}", file=sys.stderr)
        return 1  # not 2: a port in use or a missing directory may be gone at the next try
    rlog.setup(config.logging.level)
    for h in found:  # the daemon runs; these fail where they are used, and are logged there again
        log.error("configuration %s: %s", config_path or "embedded default", h.issue)
    from rsu.ops import shards

    # a supervisor and its worker processes (docs/scaling.md); a state once sharded stays so
    if shards.resolve_count(config.workers) > 1 or shards.table_path(config.state_path).exists():
        from rsu.ops import workers

        return workers.run(config, config_path, overrides)
    try:
        import uvloop  # optional: the faster event loop when installed

        loop_runner = uvloop.run
    except ImportError:
        loop_runner = asyncio.run
    from rsu.ops.daemon import Daemon

    daemon = Daemon(config, config_path=config_path, overrides=overrides)
    try:
        loop_runner(daemon.run())
    except KeyboardInterrupt:
        pass
    except Exception as e:  # noqa: BLE001 - start-up failure (port in use, unreadable PKI...): one log line, exit 1, no traceback
        from rsu.services.store import StoreDamaged

        rlog.setup(config.logging.level)
        log.critical("cannot start: %s: %s", type(e).__name__, e)
        return 2 if isinstance(e, StoreDamaged) else 1
    return 0
