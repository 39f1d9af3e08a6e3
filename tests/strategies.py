"""Hypothesis strategies that generate valid Python-form values from our schema model.

``value_strategy(schema, node)`` walks a :class:`rsu.codec.schema.Node` and builds a strategy for
values of that type in the Python value form of ``rsu.codec.values``; ``pdu_strategy(codec, kind)``
builds whole PDUs whose ItsPduHeader carries the kind's messageID and protocolVersion.

Shape of the generated values (chosen so both codecs see every construct yet stay fast):

* INTEGER: inside the PER-visible range; an extensible range stays in the root 7 times out of 8
  (the rest go up to 2**16 beyond it); a union ``2..4 | 6..8`` draws from its ranges only;
  semi-constrained and unconstrained integers stay within +-2**40 of their bound.
* SIZE: lower bounds are respected; lists, strings and octet strings carry at most a few items
  (three near the root, fewer deeper down, the minimum past ``max_depth``).
* ENUMERATED: root identifiers (extension identifiers, if a type has any, now and then).
* BIT STRING: ``(bytes, nbits)`` with the unused trailing bits zero.
* character strings: the type's alphabet (IA5: 0..127, Visible: 32..126, Numeric: digits and
  space, Printable: its X.680 set, UTF8: ASCII plus a few non-ASCII letters and symbols).
* CHOICE: any alternative; extension alternatives (e.g. IVI ``avc``/``mlc``/``rsc``) less often.
* SEQUENCE: OPTIONAL and extension members present or absent, with the probability of
  presence falling with depth; WITH COMPONENTS ``PRESENT``/``ABSENT`` honoured; extension
  addition groups ``[[ ... ]]`` (which the schema model flattens) are read back from the parse
  tree so that a present group has all its mandatory members.
* RegionalExtension: for a Reg-* set with a typed region (addGrpC, regionId 3) mostly the typed
  value, otherwise (and for every empty set) another regionId with raw open-type bytes.
* Past ``max_depth`` a value takes the shallowest shape its type allows (mandatory members only,
  the minimum list size, the alternative with the shortest mandatory chain), so recursive types
  (GDD structures nest through destination places) always terminate.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from rsu.codec.schema import Bounds, Node, Schema

# character sets -----------------------------------------------------------------------------
_PRINTABLE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
_UTF8_EXTRA = "éÉßüøåçñ€°±µ日本語✓Ωπ→"
_ALPHABETS = {
    # IA5String is all 128 T.50 characters, DEL included (X.680: C0 set, G set, SPACE and DELETE);
    # pycrate's set_val() wrongly rejects DEL (its IA5 alphabet stops at '~'), so generated values
    # stop at 126 and test_ia5string_delete_interop checks DEL separately (pycrate decodes it fine).
    "IA5String": st.characters(min_codepoint=0, max_codepoint=126),
    "VisibleString": st.characters(min_codepoint=32, max_codepoint=126),
    "NumericString": st.sampled_from("0123456789 "),
    "PrintableString": st.sampled_from(_PRINTABLE),
    "UTF8String": st.one_of(
        st.characters(min_codepoint=32, max_codepoint=126),
        st.sampled_from(_UTF8_EXTRA),
    ),
}

DEFAULT_MAX_DEPTH = 20  # nesting levels (SEQUENCE / CHOICE / list / regional value) before values go minimal
MAX_ITEMS = 3  # the most items of any list / string / octet string near the root
UNBOUNDED = 2**40  # integers without one or both bounds stay this close to the bound (or to 0)
EXT_INTEGER_SPREAD = 2**16  # how far beyond an extensible root an extension value may go
# Lengths outside the root of an extensible BIT STRING size (MAPEM LaneAttributes-Vehicle,
# SIZE(8, ...)) are generated too: asn1tools alone raises NotImplementedError for them, and
# rsu.codec.asn1patches adds the X.691 encoding.
BIT_STRING_SIZE_EXTENSIONS = True


def _weighted(common: st.SearchStrategy, rare: st.SearchStrategy, one_in: int) -> st.SearchStrategy:
    """``rare`` about once in ``one_in`` draws, else ``common`` (shrinks towards ``common``).

    ``one_of`` picks a branch uniformly, so repeating a branch weights it (cheaper than flatmap).
    """
    return st.one_of(*([common] * (one_in - 1)), rare)


def _optional(child: st.SearchStrategy, depth: int) -> st.SearchStrategy:
    """An OPTIONAL member: present 2/3 of the time near the root (so deep structures get reached),
    then 1/2, then 1/3 deeper down (so values stay small). Shrinks towards absent."""
    absent = st.just(_ABSENT)
    if depth < 4:
        return st.one_of(absent, child, child)
    if depth < 8:
        return st.one_of(absent, child)
    return st.one_of(absent, absent, child)


class _Builder:
    def __init__(self, schema: Schema, max_depth: int, size_extensions: bool = BIT_STRING_SIZE_EXTENSIONS):
        self.schema = schema
        self.max_depth = max_depth
        self.size_extensions = size_extensions
        self._cache: dict[tuple[int, int], st.SearchStrategy] = {}
        self._height: dict[int, float] = {}
        self._groups: dict[int, list[tuple[list[str], list[str]]]] = {}

    # --- structure facts ---------------------------------------------------------------------
    def _children(self, node: Node) -> list[Node]:
        if node.kind in ("SEQUENCE", "CHOICE"):
            return [m.node for m in node.members]
        if node.kind == "SEQUENCE OF":
            return [node.element]  # type: ignore[list-item]
        if node.kind == "REGEXT":
            return list(self.schema.regset_types(node.regset or "").values())
        return []

    def _compute_heights(self, root: Node) -> None:
        """Minimal nesting depth of a value of each node (a fixpoint; inf would mean no finite value)."""
        todo, nodes = [root], {}
        while todo:
            n = todo.pop()
            if id(n) in nodes or id(n) in self._height:
                continue
            nodes[id(n)] = n
            todo.extend(self._children(n))
        h = {k: math.inf for k in nodes}

        def get(n: Node) -> float:
            return self._height.get(id(n), h.get(id(n), math.inf))

        changed = True
        while changed:
            changed = False
            for k, n in nodes.items():
                if n.kind == "SEQUENCE":
                    need = [get(m.node) for m in n.members if self._mandatory(m)]
                    new = 1 + max(need, default=0)
                elif n.kind == "CHOICE":
                    new = 1 + min((get(m.node) for m in n.members), default=math.inf)
                elif n.kind == "SEQUENCE OF":
                    lo = n.size.lo if n.size and n.size.lo else 0
                    new = 1 + (get(n.element) if lo else 0)  # type: ignore[arg-type]
                else:  # leaves; a REGEXT can always carry raw bytes
                    new = 1
                if new < h[k]:
                    h[k] = new
                    changed = True
        self._height.update(h)

    def height(self, node: Node) -> float:
        if id(node) not in self._height:
            self._compute_heights(node)
        return self._height[id(node)]

    @staticmethod
    def _mandatory(m) -> bool:
        return m.presence == "PRESENT" or not (m.optional or m.extension) and m.presence != "ABSENT"

    def _ext_groups(self, node: Node) -> list[tuple[list[str], list[str]]]:
        """Extension addition groups of a SEQUENCE: (all member names, mandatory member names) each.

        The schema model marks every member of a ``[[ ... ]]`` group optional; a group that is
        present must carry its mandatory members, and an absent group none of its members, so the
        generator reads the groups back from asn1tools' parse tree (named types only; no anonymous
        SEQUENCE of our modules has a group).
        """
        key = id(node)
        if key in self._groups:
            return self._groups[key]
        groups: list[tuple[list[str], list[str]]] = []
        spec = None
        if node.name and node.module:
            spec = self.schema.parsed.get(node.module, {}).get("types", {}).get(node.name)
        if spec and spec.get("type") in ("SEQUENCE", "SET"):
            for m in spec.get("members", []):
                if isinstance(m, list):
                    members = [mm for mm in m if mm is not None]
                    groups.append(
                        ([mm["name"] for mm in members], [mm["name"] for mm in members if not mm.get("optional")])
                    )
        self._groups[key] = groups
        return groups

    # --- strategies ---------------------------------------------------------------------------
    def build(self, node: Node, depth: int = 0) -> st.SearchStrategy:
        depth = min(depth, self.max_depth + 1)
        key = (id(node), depth)
        s = self._cache.get(key)
        if s is None:
            s = self._make(node, depth)
            self._cache[key] = s
        return s

    def _child(self, node: Node, depth: int) -> st.SearchStrategy:
        return st.deferred(lambda: self.build(node, depth))

    def _count(self, b: Bounds | None, depth: int, cap: int | None = None) -> tuple[int, int]:
        """(min, max) number of items within SIZE bounds, kept small (respecting the lower bound)."""
        lo = b.lo if b and b.lo is not None else 0
        if b and b.ranges:  # a union of sizes: the first (root) range
            lo = b.ranges[0][0] if b.ranges[0][0] is not None else 0
        hi = b.hi if b and b.hi is not None else None
        if b and b.ranges and b.ranges[0][1] is not None:
            hi = b.ranges[0][1]
        if cap is None:
            cap = MAX_ITEMS if depth <= 3 else (2 if depth <= self.max_depth // 2 + 2 else 1)
        if depth > self.max_depth:
            cap = 0
        top = lo + cap if hi is None else min(hi, max(lo, cap))
        return lo, max(lo, top)

    def _make(self, node: Node, depth: int) -> st.SearchStrategy:
        k = node.kind
        if k == "SEQUENCE":
            return self._sequence(node, depth)
        if k == "CHOICE":
            return self._choice(node, depth)
        if k == "SEQUENCE OF":
            lo, hi = self._count(node.size, depth)
            return st.lists(self._child(node.element, depth + 1), min_size=lo, max_size=hi)  # type: ignore[arg-type]
        if k == "INTEGER":
            return self._integer(node.value_range)
        if k == "BOOLEAN":
            return st.booleans()
        if k == "NULL":
            return st.none()
        if k == "ENUMERATED":
            root = st.sampled_from(node.enum_root)
            return _weighted(root, st.sampled_from(node.enum_ext), 8) if node.enum_ext else root
        if k == "BIT STRING":
            return self._bits(node, depth)
        if k == "OCTET STRING":
            lo, hi = self._count(node.size, depth, cap=8)
            return st.binary(min_size=lo, max_size=hi)
        if k == "STRING":
            alphabet = _ALPHABETS.get(node.string_type or "", _ALPHABETS["VisibleString"])
            lo, hi = self._count(node.size, depth, cap=6)
            return st.text(alphabet, min_size=lo, max_size=hi)
        if k == "REGEXT":
            return self._regext(node, depth)
        if k == "OPEN":
            return st.binary(min_size=1, max_size=8)
        raise NotImplementedError(f"no strategy for {k} ({node.label})")

    @staticmethod
    def _integer(b: Bounds | None) -> st.SearchStrategy[int]:
        if b is None or (b.lo is None and b.hi is None):
            return st.integers(-UNBOUNDED, UNBOUNDED)
        if b.lo is None:
            return st.integers(b.hi - UNBOUNDED, b.hi)  # type: ignore[operator]
        if b.hi is None:
            return st.integers(b.lo, b.lo + UNBOUNDED)
        if b.ranges and not b.extensible:
            return st.one_of(*[st.integers(lo, hi) for lo, hi in b.ranges])  # type: ignore[arg-type]
        if b.ranges:  # (root ranges, ..., extension ranges): the first range is root
            lo, hi = b.ranges[0]
            root = st.integers(lo, hi)  # type: ignore[arg-type]
        else:
            lo, hi = b.lo, b.hi
            root = st.integers(lo, hi)
        if not b.extensible:
            return root
        below = st.integers(lo - EXT_INTEGER_SPREAD, lo - 1) if lo is not None else st.nothing()
        above = st.integers(hi + 1, hi + EXT_INTEGER_SPREAD) if hi is not None else st.nothing()
        return _weighted(root, st.one_of(below, above), 8)

    def _bits(self, node: Node, depth: int) -> st.SearchStrategy:
        b = node.size

        def bits(n: int) -> st.SearchStrategy:
            nbytes = (n + 7) // 8
            pad = nbytes * 8 - n
            return st.integers(0, (1 << n) - 1).map(lambda v: (((v << pad).to_bytes(nbytes, "big")), n))

        if b is not None and b.lo is not None and b.lo == b.hi:
            fixed = bits(b.lo)
            if b.extensible and self.size_extensions:  # SIZE(8, ...): an extension length
                return _weighted(fixed, st.integers(0, b.lo + 8).flatmap(bits), 8)
            return fixed
        lo, hi = self._count(b, depth, cap=40)
        return st.integers(lo, hi).flatmap(bits)

    def _choice(self, node: Node, depth: int) -> st.SearchStrategy:
        members = node.members
        if depth > self.max_depth:  # shallowest alternatives only
            best = min(self.height(m.node) for m in members)
            members = [m for m in members if self.height(m.node) == best]
        root = [m for m in members if not m.extension]
        ext = [m for m in members if m.extension]

        def alt(ms):
            return st.one_of(*[self._child(m.node, depth + 1).map(lambda v, name=m.name: (name, v)) for m in ms])

        if root and ext:
            return _weighted(alt(root), alt(ext), 4)
        return alt(root or ext)

    def _sequence(self, node: Node, depth: int) -> st.SearchStrategy:
        groups = self._ext_groups(node)
        grouped = {name for _, mandatory in groups for name in mandatory}
        deep = depth > self.max_depth
        parts: dict[str, st.SearchStrategy] = {}
        for m in node.members:
            child = self._child(m.node, depth + 1)
            if m.presence == "ABSENT":
                continue
            if self._mandatory(m) or m.name in grouped:
                parts[m.name] = child  # a group's mandatory members are dropped below if it is off
            elif not deep:
                parts[m.name] = _optional(child, depth)

        group_flags = st.tuples(*[st.booleans() if not deep else st.just(False) for _ in groups])

        def assemble(args):
            drawn, flags = args
            out = {}
            absent_names = {name for (names, _), on in zip(groups, flags) if not on for name in names}
            for name, value in drawn.items():
                if value is _ABSENT or name in absent_names:
                    continue
                out[name] = value
            return out

        return st.tuples(st.fixed_dictionaries(parts), group_flags).map(assemble)

    def _regext(self, node: Node, depth: int) -> st.SearchStrategy:
        typed = self.schema.regset_types(node.regset or "")
        raw_ids = [i for i in range(256) if i not in typed]
        raw = st.fixed_dictionaries(
            {
                "regionId": st.sampled_from(raw_ids),
                "regExtValue": st.binary(min_size=1, max_size=6),
            }
        )
        if not typed or depth > self.max_depth:
            return raw
        known = st.one_of(
            *[
                self._child(t, depth + 1).map(lambda v, r=rid: {"regionId": r, "regExtValue": v})
                for rid, t in sorted(typed.items())
            ]
        )
        return _weighted(known, raw, 4)


class _Absent:
    def __repr__(self) -> str:  # pragma: no cover - only in failure output
        return "<absent>"


_ABSENT = _Absent()

_builders: dict[tuple[int, int], _Builder] = {}


def _builder(schema: Schema, max_depth: int, size_extensions: bool = BIT_STRING_SIZE_EXTENSIONS) -> _Builder:
    key = (id(schema), max_depth, size_extensions)
    b = _builders.get(key)
    if b is None:
        b = _builders[key] = _Builder(schema, max_depth, size_extensions)
    return b


def value_strategy(schema: Schema, node: Node, max_depth: int = DEFAULT_MAX_DEPTH) -> st.SearchStrategy[Any]:
    """Valid values of ``node`` in the Python value form (see the module docstring for their shape)."""
    return _builder(schema, max_depth).build(node, 0)


def pdu_strategy(
    codec, kind, max_depth: int = DEFAULT_MAX_DEPTH, *, size_extensions: bool = BIT_STRING_SIZE_EXTENSIONS
) -> st.SearchStrategy[dict]:
    """Whole PDUs of one kind: header fixed to the kind's messageID and protocolVersion.

    ``size_extensions=False`` keeps extensible-size BIT STRINGs at their root length (pycrate's JER
    prints those as bare hex without a length, so it cannot show an extension length)."""
    root = codec.node(kind)
    body = next(m for m in root.members if m.name == kind.body)
    header = st.fixed_dictionaries(
        {
            "protocolVersion": st.just(kind.protocol_version),
            "messageID": st.just(kind.message_id),
            "stationID": st.integers(0, 2**32 - 1),
        }
    )
    return st.fixed_dictionaries(
        {
            "header": header,
            kind.body: _builder(codec.schema, max_depth, size_extensions).build(body.node, 1),
        }
    )


def seeded(max_examples: int) -> settings:
    """Hypothesis settings for differential tests: the same examples on every run, no deadline."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
