"""Which parts of the daemon a reload rebuilds: a table from configuration sections to parts.

Takes the old and the new :class:`rsu.ops.config.Config`; gives the set of parts to rebuild
(:data:`PARTS`, in the order the daemon applies them). A part absent from the set is kept as it runs
(the API keeps its streams, the layer its entries: they live in the store either way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rsu.ops.config import Config

SECTIONS = (
    "station",
    "state_dir",
    "security",
    "services",
    "transports",
    "api",
    "integrations",
    "pki",
    "forward",
    "clock",
)

# part -> the sections whose change rebuilds it. The PKI client depends on the position (regions), the
# IVI provider (permissions) and the state; a rebuilt client counts as a changed "pki" for the parts after it.
REBUILT_BY: dict[str, frozenset[str]] = {
    "health": frozenset({"clock"}),  # reconfigured in place: the gate the send pipeline holds stays
    "pki": frozenset({"pki", "state_dir", "station", "services"}),
    "security": frozenset({"security", "state_dir", "pki"}),
    "layer": frozenset({"station", "state_dir", "services", "security", "pki"}),
    "transports": frozenset({"station", "transports", "security", "pki"}),
    "forward": frozenset({"forward", "state_dir", "station"}),
    "integrations": frozenset({"integrations"}),
    "api": frozenset({"api"}),
}
PARTS = tuple(REBUILT_BY)


def changed_sections(old: Config, new: Config) -> set[str]:
    return {name for name in SECTIONS if getattr(old, name) != getattr(new, name)}


def parts_to_rebuild(old: Config, new: Config) -> set[str]:
    """The parts (of :data:`PARTS`) that going from ``old`` to ``new`` rebuilds."""
    changed = changed_sections(old, new)
    parts = set()
    if changed & REBUILT_BY["pki"] and (old.pki or new.pki):  # no client before or after: nothing to rebuild
        parts.add("pki")
        changed.add("pki")
    parts.update(part for part in PARTS if part != "pki" and changed & REBUILT_BY[part])
    return parts
