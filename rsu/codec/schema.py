"""A small, resolved type model of a compiled ASN.1 module set.

asn1tools keeps its own compiled types private; for the things it does not do
for us (field-path validation, the JER form, typed regional extensions, test
value generation) we walk this model instead. It is built from asn1tools'
parse tree, lazily and memoised per named type, so recursive types work.

Facts the parse tree drops are read from the module text here:
which ``Reg-*`` object set each ``RegionalExtension {{Reg-X}}`` field uses, and
what each set contains (``{Type IDENTIFIED BY regionName}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rsu.codec.asn1files import CompiledSet

STRING_TYPES = frozenset(
    {"IA5String", "UTF8String", "NumericString", "VisibleString", "PrintableString", "BMPString", "UniversalString"}
)
_BUILTIN = frozenset(
    {
        "SEQUENCE",
        "SET",
        "CHOICE",
        "SEQUENCE OF",
        "SET OF",
        "INTEGER",
        "BOOLEAN",
        "NULL",
        "ENUMERATED",
        "BIT STRING",
        "OCTET STRING",
        "OBJECT IDENTIFIER",
    }
    | STRING_TYPES
)


@dataclass(frozen=True)
class Bounds:
    """A range constraint (value or size): ``lo..hi`` spans it (None = unbounded), ``extensible``
    marks ``...``, and ``ranges`` keeps a union such as ``2..4 | 6..8`` exactly."""

    lo: int | None
    hi: int | None
    extensible: bool
    ranges: tuple[tuple[int | None, int | None], ...] = ()

    def contains(self, n: int) -> bool:
        if self.ranges:
            return any((lo is None or n >= lo) and (hi is None or n <= hi) for lo, hi in self.ranges)
        return (self.lo is None or n >= self.lo) and (self.hi is None or n <= self.hi)

    def describe(self) -> str:
        def one(lo: int | None, hi: int | None) -> str:
            a = "MIN" if lo is None else str(lo)
            b = "MAX" if hi is None else str(hi)
            return a if lo == hi else f"{a}..{b}"

        if self.ranges:
            return " | ".join(one(lo, hi) for lo, hi in self.ranges)
        return one(self.lo, self.hi)


@dataclass(eq=False)
class Member:
    name: str
    node: Node
    optional: bool = False
    extension: bool = False  # an extension addition (after the "...")
    # WITH COMPONENTS refinement from the enclosing type: "ABSENT", "PRESENT" or None
    presence: str | None = None
    # index of the extension addition group ``[[ ... ]]`` of a SEQUENCE this member belongs to;
    # the group as a whole may be absent, but once one of its members is present its
    # non-OPTIONAL members must be too (``optional`` is the member's own flag inside the group)
    group: int | None = None


@dataclass(eq=False)
class Node:
    kind: str  # SEQUENCE | CHOICE | SEQUENCE OF | INTEGER | BOOLEAN | NULL | ENUMERATED | BIT STRING
    #            | OCTET STRING | STRING | OBJECT IDENTIFIER | REGEXT (RegionalExtension) | OPEN
    name: str | None = None  # the defined type's name, when the node is a named type
    module: str | None = None
    members: list[Member] = field(default_factory=list)
    extensible: bool = False
    element: Node | None = None
    size: Bounds | None = None
    value_range: Bounds | None = None
    enum_root: list[str] = field(default_factory=list)
    enum_ext: list[str] = field(default_factory=list)
    named_bits: dict[str, int] = field(default_factory=dict)
    named_numbers: dict[str, int] = field(default_factory=dict)
    string_type: str | None = None
    regset: str | None = None  # REGEXT: name of the Reg-* object set
    _member_map: dict[str, Member] | None = None

    @property
    def member_map(self) -> dict[str, Member]:
        if self._member_map is None:
            self._member_map = {m.name: m for m in self.members}
        return self._member_map

    @property
    def label(self) -> str:
        return self.name or self.kind


# the asn1tools parse tree is JSON-like and untyped: its nodes are the one boundary typed Any here
Spec = dict[str, Any]
Resolver = Callable[[Any], Any]


def _bounds(spec: list[Any] | None, resolve_value: Resolver) -> Bounds | None:
    """asn1tools constraint list -> Bounds. Entries: int, [lo, hi], or None (extension marker)."""
    if not spec:
        return None
    extensible = any(item is None for item in spec)
    los: list[int | None] = []
    his: list[int | None] = []
    for item in spec:
        if item is None:
            continue
        if isinstance(item, (list, tuple)):
            lo, hi = item
        else:
            lo = hi = item
        lo = None if lo == "MIN" else resolve_value(lo)
        hi = None if hi == "MAX" else resolve_value(hi)
        los.append(lo)
        his.append(hi)
    if not los:
        return Bounds(None, None, extensible)
    lo = None if any(v is None for v in los) else min(los)  # type: ignore[type-var]
    hi = None if any(v is None for v in his) else max(his)  # type: ignore[type-var]
    ranges = tuple(zip(los, his)) if len(los) > 1 else ()
    return Bounds(lo, hi, extensible, ranges)


# --- regional extension facts from the module text ----------------------------------------

_COMMENT = re.compile(r"--.*?(?:--|$)", re.M)
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z][\w-]*)\s+(?:([A-Z][\w-]*)\s+)?::=", re.M)
_REG_FIELD = re.compile(
    r"([a-z][\w-]*)\s+(?:SEQUENCE\s*\(\s*SIZE\s*\([^)]*\)\s*\)\s*OF\s+)?RegionalExtension\s*\{\{\s*([\w-]+)\s*\}\}"
)
_OBJECT = re.compile(r"\{\s*([A-Za-z][\w.-]*)\s+IDENTIFIED\s+BY\s+([a-z][\w-]*)\s*\}")


def strip_comments(text: str) -> str:
    return _COMMENT.sub("", text)


def _assignments(text: str) -> Iterator[tuple[str, str | None, str]]:
    """(name, governing class or type, body) for every top-level assignment in a module text without comments."""
    found = list(_ASSIGNMENT.finditer(text))
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        yield m.group(1), m.group(2), text[m.end() : end]


def _balanced(body: str) -> str:
    """The text inside the first {...} of ``body`` (brace-matched)."""
    start = body.find("{")
    if start < 0:
        return ""
    depth = 0
    for i in range(start, len(body)):
        if body[i] == "{":
            depth += 1
        elif body[i] == "}":
            depth -= 1
            if depth == 0:
                return body[start + 1 : i]
    return body[start + 1 :]


@dataclass(frozen=True)
class RegionalFacts:
    field_sets: dict[tuple[str, str], str]  # (type name, member name) -> Reg-* set name
    set_members: dict[str, dict[str, str]]  # Reg-* set name -> {region value name: type name}


def scan_regional_facts(sources: dict[str, str]) -> RegionalFacts:
    field_sets: dict[tuple[str, str], str] = {}
    set_members: dict[str, dict[str, str]] = {}
    for text in sources.values():
        text = strip_comments(text)
        for name, governor, body in _assignments(text):
            if "RegionalExtension" in body:  # what _REG_FIELD needs (its search elsewhere is most of the scan)
                for m in _REG_FIELD.finditer(body):
                    field_sets[(name, m.group(1))] = m.group(2)
            if governor == "REG-EXT-ID-AND-TYPE":
                members = {obj.group(2): obj.group(1).split(".")[-1] for obj in _OBJECT.finditer(_balanced(body))}
                set_members[name] = members
    return RegionalFacts(field_sets, set_members)


# --- the model ------------------------------------------------------------------------------


# the fields a refinement copies from a node (its own refinement state starts anew)
_COPIED_FIELDS = (
    "kind",
    "name",
    "module",
    "members",
    "extensible",
    "element",
    "size",
    "value_range",
    "enum_root",
    "enum_ext",
    "named_bits",
    "named_numbers",
    "string_type",
    "regset",
)


def _copy_node(node: Node) -> Node:
    """A new node with ``node``'s type facts, for a refinement (WITH COMPONENTS) to change."""
    return Node(**{k: getattr(node, k) for k in _COPIED_FIELDS})


class Schema:
    """Resolved type model over one compiled module set."""

    def __init__(self, compiled: CompiledSet) -> None:
        self.compiled = compiled
        self.parsed = compiled.parsed
        self.regional = scan_regional_facts(compiled.sources)
        self._named: dict[tuple[str, str], Node] = {}
        self._module_of_type: dict[str, str] = {}
        for module, content in self.parsed.items():
            for tname in content["types"]:
                self._module_of_type.setdefault(tname, module)
        self.region_ids = self._region_ids()

    # resolution ---------------------------------------------------------------------------
    def _resolve_module(self, module: str, name: str, kind: str = "types") -> str | None:
        seen = set()
        while module not in seen:
            seen.add(module)
            content = self.parsed.get(module)
            if content is None:
                return None
            if name in content[kind]:
                return module
            for imported_from, names in content["imports"].items():
                if name in names:
                    module = imported_from
                    break
            else:
                return None
        return None

    def value(self, module: str, name: str) -> Any:
        where = self._resolve_module(module, name, "values")
        if where is None:
            raise KeyError(f"value {name} not found from module {module}")
        return self.parsed[where]["values"][name]["value"]

    def _region_ids(self) -> dict[str, int]:
        ids: dict[str, int] = {}
        for content in self.parsed.values():
            for vname, v in content["values"].items():
                if v.get("type") == "RegionId":
                    ids[vname] = v["value"]
        return ids

    def regset_types(self, regset: str) -> dict[int, Node]:
        """regionId -> typed node for the values of one Reg-* object set."""
        out: dict[int, Node] = {}
        for region_name, type_name in self.regional.set_members.get(regset, {}).items():
            module = self._module_of_type.get(type_name)
            if module is None or region_name not in self.region_ids:
                raise KeyError(f"{regset}: cannot resolve {type_name} IDENTIFIED BY {region_name}")
            out[self.region_ids[region_name]] = self.named(module, type_name)
        return out

    def named(self, module: str, name: str) -> Node:
        """The node for a named type as seen from ``module`` (imports followed)."""
        where = self._resolve_module(module, name)
        if where is None:
            raise KeyError(f"type {name} not found from module {module}")
        key = (where, name)
        node = self._named.get(key)
        if node is None:
            node = Node(kind="?", name=name, module=where)
            self._named[key] = node  # registered before filling: recursive types
            self._fill(node, self.parsed[where]["types"][name], where, name)
        return node

    def pdu(self, name: str) -> Node:
        module = self._module_of_type.get(name)
        if module is None:
            raise KeyError(f"no type {name} in module set {self.compiled.name}")
        return self.named(module, name)

    def _resolver(self, module: str) -> Resolver:
        def resolve(v: Any) -> Any:
            if isinstance(v, str):
                return self.value(module, v)
            return v

        return resolve

    def _build(self, spec: Spec, module: str, owner: str, member: str | None) -> Node:
        """Node for an inline type spec (a reference gives the named node, refined if constrained)."""
        t = spec["type"]
        if t == "RegionalExtension" or (t not in _BUILTIN and t.endswith("RegionalExtension")):
            regset = self.regional.field_sets.get((owner, member or ""))
            if regset is None:
                raise KeyError(f"{module}.{owner}.{member}: RegionalExtension without a known Reg-* set")
            return Node(kind="REGEXT", module=module, regset=regset)
        if t not in _BUILTIN and ".&" not in t:
            base = self.named(module, t)
            refined = self._refinements(spec, module)
            if not refined:
                return base
            node = _copy_node(base)
            self._apply(node, refined, module)
            return node
        node = Node(kind="?", module=module)
        self._fill(node, spec, module, owner, member)
        return node

    @staticmethod
    def _refinements(spec: Spec, module: str) -> Spec:
        return {k: spec[k] for k in ("restricted-to", "size", "with-components") if k in spec}

    def _apply(self, node: Node, refined: Spec, module: str) -> None:
        resolve = self._resolver(module)
        if "restricted-to" in refined:
            node.value_range = _bounds(refined["restricted-to"], resolve)
        if "size" in refined:
            node.size = _bounds(refined["size"], resolve)
        if "with-components" in refined:
            self._apply_components(node, refined["with-components"], module)

    def _apply_components(self, node: Node, comps: list[Any], module: str) -> None:
        """WITH COMPONENTS: copies the member list with presence/size refinements (not PER-visible)."""
        if node.kind == "SEQUENCE OF" and node.element is not None:
            elem = _copy_node(node.element)
            self._apply_components(elem, comps, module)
            node.element = elem
            return
        if node.kind not in ("SEQUENCE", "CHOICE"):
            return
        members = [Member(m.name, m.node, m.optional, m.extension, m.presence, m.group) for m in node.members]
        by_name = {m.name: m for m in members}
        for comp in comps:
            if not comp:
                continue
            name = comp[0]
            target = by_name.get(name)
            if target is None:
                continue
            for extra in comp[1:]:
                if extra in ("ABSENT", "PRESENT"):
                    target.presence = extra
                elif isinstance(extra, dict):
                    sub = _copy_node(target.node)
                    self._apply(sub, extra, module)
                    target.node = sub
        node.members = members
        node._member_map = None

    def _fill(self, node: Node, spec: Spec, module: str, owner: str, member: str | None = None) -> None:
        t = spec["type"]
        resolve = self._resolver(module)
        if t not in _BUILTIN and ".&" not in t:
            # a named type defined as another named type (Foo ::= Bar (constraint))
            base = self.named(module, t)
            for k in _COPIED_FIELDS:
                if k not in ("name", "module"):  # the node keeps its own name and module
                    setattr(node, k, getattr(base, k))
            self._apply(node, self._refinements(spec, module), module)
            return
        if ".&" in t:
            cls, fld = t.split(".&")
            if fld[:1].isupper():  # a type field: an open type
                node.kind = "OPEN"
                return
            # a value field: its type comes from the class definition
            cls_mod = self._resolve_module(module, cls, "object-classes")
            members = self.parsed[cls_mod]["object-classes"][cls]["members"] if cls_mod else []
            ftype = next((m["type"] for m in members if m["name"] == "&" + fld), None)
            if ftype is None:
                raise KeyError(f"{module}: class field {t} not found")
            self._fill(node, {"type": ftype}, module, owner, member)
            return
        if t in ("SEQUENCE", "SET", "CHOICE"):
            node.kind = "CHOICE" if t == "CHOICE" else "SEQUENCE"
            after_marker = False
            for index, m in enumerate(spec.get("members", [])):
                if m is None:
                    node.extensible = True
                    after_marker = True
                    continue
                grouped = isinstance(m, list) and node.kind == "SEQUENCE"
                for mm in m if isinstance(m, list) else [m]:
                    if mm is None:
                        continue
                    child = self._build(mm, module, owner, mm["name"])
                    node.members.append(
                        Member(
                            mm["name"],
                            child,
                            optional=bool(mm.get("optional")),
                            extension=after_marker or isinstance(m, list),
                            group=index if grouped else None,
                        )
                    )
            if "with-components" in spec:
                self._apply_components(node, spec["with-components"], module)
        elif t in ("SEQUENCE OF", "SET OF"):
            node.kind = "SEQUENCE OF"
            node.element = self._build(spec["element"], module, owner, member)
            node.size = _bounds(spec.get("size"), resolve)
            if "with-components" in spec["element"]:
                pass  # applied by _build through _refinements
        elif t == "INTEGER":
            node.kind = "INTEGER"
            node.value_range = _bounds(spec.get("restricted-to"), resolve)
            node.named_numbers = dict(spec.get("named-numbers") or {})
        elif t == "ENUMERATED":
            node.kind = "ENUMERATED"
            target = node.enum_root
            for v in spec["values"]:
                if v is None:
                    node.extensible = True
                    target = node.enum_ext
                    continue
                target.append(v[0])
        elif t == "BIT STRING":
            node.kind = "BIT STRING"
            node.size = _bounds(spec.get("size"), resolve)
            node.named_bits = {name: int(pos) for name, pos in spec.get("named-bits") or []}
        elif t == "OCTET STRING":
            node.kind = "OCTET STRING"
            node.size = _bounds(spec.get("size"), resolve)
        elif t in STRING_TYPES:
            node.kind = "STRING"
            node.string_type = t
            node.size = _bounds(spec.get("size"), resolve)
        elif t in ("BOOLEAN", "NULL", "OBJECT IDENTIFIER"):
            node.kind = t
        else:  # pragma: no cover - the builtin list above is exhaustive for our modules
            raise KeyError(f"{module}.{owner}: unsupported type {t}")

    # introspection -------------------------------------------------------------------------
    def all_named(self) -> Iterator[Node]:
        for module, content in self.parsed.items():
            for tname in content["types"]:
                if "parameters" in content["types"][tname]:
                    continue  # parameterised types are only used through their instances
                yield self.named(module, tname)
