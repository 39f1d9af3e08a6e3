"""Bounds on state that other stations can make grow: the one list of their names.

Every table a received frame can add to (held frames, certificate requests, caches, duplicate
and replay lists, the IVI collection, the TLC request table) has a configurable bound with a
safe default. When a bound is reached the table makes room by forgetting its oldest entry (or
refuses the new one, as each says) and calls ``on_limit(name)``; the daemon counts that in
``rsu_limit_hits_total{limit=name}``. The sans-I/O objects take ``on_limit`` as a plain callable
and default to :func:`ignore`.
"""

from __future__ import annotations

from collections.abc import Callable

OnLimit = Callable[[str], None]

# name -> (where it is configured, what happens when it is reached)
LIMITS: dict[str, tuple[str, str]] = {
    "held-frames": (
        "security.limits.held_frames",
        "a frame signed by an unknown digest was held while the queue was full: the oldest "
        "held frame is dropped (reason security:hold-queue-full)",
    ),
    "p2pcd-pending": (
        "security.limits.p2pcd_pending",
        "a certificate request was added while the list of wanted certificates was full: "
        "the oldest request is forgotten",
    ),
    "p2pcd-per-frame": (
        "security.limits.p2pcd_per_frame",
        "more certificates are wanted than one outgoing frame may ask for: the rest wait for the next frame",
    ),
    "certificate-cache": (
        "security.limits.certificate_cache",
        "a verified certificate was cached while the cache was full: the least recently "
        "used one is forgotten (its digest-signed frames are held and requested again)",
    ),
    "replay-window": (
        "security.limits.replay_entries",
        "an accepted message was remembered for replay detection while the list was full: "
        "the oldest entry is forgotten",
    ),
    "gn-duplicate-table": (
        "transports[i].duplicate_entries",
        "a GN (source, sequence number) was remembered while the list was full: the oldest entry is forgotten",
    ),
    "ivi-collection": (
        "services.rules.ivi_received_max",
        "a received IVI was collected while the collection was full: the IVI heard least recently is forgotten",
    ),
    "tlc-requests": (
        "services.rules.srem_pending_max",
        "a received SREM request was added while the table of pending requests was full: the "
        "request heard least recently is forgotten",
    ),
    "api-lockout": (
        "api.auth.lockout.max_entries",
        "a failed API authentication from a new address or identity while the lockout table was "
        "full: the entry with the oldest failure (not banned first) is forgotten",
    ),
    "api-rate-limit": (
        "api.auth.lockout.max_entries",
        "a new identity changed state while the rate-limit table was full: the identity seen "
        "least recently is forgotten",
    ),
    "ui-sessions": (
        "api.auth.max_ui_sessions",
        "a web-view login (POST /ui/login) while the table of sessions was full: the oldest session "
        "ends (its browser logs in again)",
    ),
}


def ignore(name: str) -> None:
    """The default ``on_limit``: nothing counts the hit."""
