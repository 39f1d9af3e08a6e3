"""Converters between our Python value form and pycrate's, for the interoperability tests.

pycrate (``pycrate_asn1dir.ITS_IS``, compiled by pycrate from the ETSI/ISO modules) is an
independent UPER/JER codec; it differs from our value form in three places only:

=====================  ==========================================  ===============================
                       ours (``rsu.codec.values``)                  pycrate
=====================  ==========================================  ===============================
BIT STRING             ``(bytes, nbits)``, bits left-aligned        ``(int, nbits)``
NULL                   ``None``                                     ``0``
regExtValue (open)     typed value (regionId 3), or raw ``bytes``   ``('IntersectionState-addGrpC',
                       for a region the Reg-* set does not know     value)`` or ``('_unk_004', bytes)``
=====================  ==========================================  ===============================

The walk follows *our* schema model (``rsu.codec.schema.Node``), so a schema difference between the
two module sets shows up as a conversion or comparison failure rather than being papered over.
"""

from __future__ import annotations

import json
from typing import Any

from pycrate_asn1dir import ITS_IS
from pycrate_asn1rt.asnobj_construct import SEQ
from pycrate_asn1rt.err import ASN1ObjErr

from rsu.codec.schema import Node, Schema

# --- a fix for pycrate's value check of extension addition groups ----------------------------
# pycrate 0.7/0.8 SEQ._safechk_valcompl() removes items from the list it is iterating over, so
# set_val() rejects a valid value that carries three or more members of one group with a
# mandatory member, e.g. IVI TcPart {..., iviType 1, laneStatus 0, vehicleCharacteristics {...}}
# ("missing extended value for group 0"). Its encoder and decoder are not affected. This is the
# same check without the mutation; nothing else of pycrate is touched.


def _safechk_valcompl(self, val):
    missing = set(self._root_mand) - set(val)
    if missing:
        raise ASN1ObjErr(f"{self.fullname()}: missing mandatory value(s): {missing}, {val!r}")
    if self._ext and self._ext_group:
        present = [k for k in val if k in self._ext]
        for grp_id in {self._ext_ident[k] for k in present if k in self._ext_ident}:
            for ident, comp in self._ext_group_obj[grp_id]._cont.items():
                if not comp._opt and ident not in present:
                    raise ASN1ObjErr(f"{self.fullname()}: missing extended value for group {grp_id}, {val!r}")


SEQ._safechk_valcompl = _safechk_valcompl

PDUS = {
    "spatem": ITS_IS.SPATEM_PDU_Descriptions.SPATEM,
    "mapem": ITS_IS.MAPEM_PDU_Descriptions.MAPEM,
    "ivim": ITS_IS.IVIM_PDU_Descriptions.IVIM,
    "srem": ITS_IS.SREM_PDU_Descriptions.SREM,
    "ssem": ITS_IS.SSEM_PDU_Descriptions.SSEM,
    "rtcmem": ITS_IS.RTCMEM_PDU_Descriptions.RTCMEM,
}

# the modules where pycrate keeps the types a Reg-* set can carry (addGrpC, region 3)
_REGION_MODULES = (ITS_IS.AddGrpC, ITS_IS.DSRC, ITS_IS.REGION)


def pycrate_type(name: str):
    """The pycrate object of a named ASN.1 type (pycrate spells '-' as '_' in attribute names)."""
    attr = name.replace("-", "_")
    for module in _REGION_MODULES:
        obj = getattr(module, attr, None)
        if obj is not None:
            return obj
    raise KeyError(f"pycrate ITS_IS has no type {name}")


def _region_node(schema: Schema, node: Node, region: int) -> Node | None:
    return schema.regset_types(node.regset or "").get(region)


def to_pycrate(schema: Schema, node: Node, v: Any) -> Any:
    """Our Python value of ``node`` -> pycrate's value (for ``set_val``)."""
    k = node.kind
    if k == "SEQUENCE":
        mm = node.member_map
        return {name: to_pycrate(schema, mm[name].node, item) for name, item in v.items()}
    if k == "CHOICE":
        alt, item = v
        return (alt, to_pycrate(schema, node.member_map[alt].node, item))
    if k == "SEQUENCE OF":
        return [to_pycrate(schema, node.element, item) for item in v]  # type: ignore[arg-type]
    if k == "BIT STRING":
        data, nbits = v
        nbytes = (nbits + 7) // 8
        return (int.from_bytes(bytes(data[:nbytes]), "big") >> (nbytes * 8 - nbits), nbits)
    if k == "NULL":
        return 0
    if k == "REGEXT":
        region, value = v["regionId"], v["regExtValue"]
        typed = _region_node(schema, node, region)
        if typed is None or isinstance(value, (bytes, bytearray)):
            return {"regionId": region, "regExtValue": ("_unk_004", bytes(value))}
        return {"regionId": region, "regExtValue": (typed.name, to_pycrate(schema, typed, value))}
    if k == "OPEN":
        return ("_unk_004", bytes(v))
    return v  # INTEGER, BOOLEAN, ENUMERATED, OCTET STRING, character strings


def from_pycrate(schema: Schema, node: Node, v: Any) -> Any:
    """pycrate's value (from ``get_val``) -> our Python value of ``node``."""
    k = node.kind
    if k == "SEQUENCE":
        mm = node.member_map
        out = {}
        for name, item in v.items():
            if name not in mm:
                raise AssertionError(f"pycrate gave member {name!r} unknown to our {node.label}")
            out[name] = from_pycrate(schema, mm[name].node, item)
        return out
    if k == "CHOICE":
        alt, item = v
        if alt not in node.member_map:
            raise AssertionError(f"pycrate gave alternative {alt!r} unknown to our {node.label}")
        return (alt, from_pycrate(schema, node.member_map[alt].node, item))
    if k == "SEQUENCE OF":
        return [from_pycrate(schema, node.element, item) for item in v]  # type: ignore[arg-type]
    if k == "BIT STRING":
        value, nbits = v
        nbytes = (nbits + 7) // 8
        return ((value << (nbytes * 8 - nbits)).to_bytes(nbytes, "big"), nbits)
    if k == "NULL":
        return None
    if k == "REGEXT":
        region = v["regionId"]
        ref, value = v["regExtValue"]
        typed = _region_node(schema, node, region)
        if isinstance(ref, str) and ref.startswith("_unk_"):
            if typed is None:
                return {"regionId": region, "regExtValue": bytes(value)}
            # pycrate could not resolve the table constraint here: decode the bytes ourselves
            obj = pycrate_type(typed.name)
            obj.from_uper(bytes(value))
            value = obj.get_val()
        elif typed is None:
            raise AssertionError(f"pycrate resolved region {region} to {ref!r}, which our {node.regset} does not know")
        elif ref != typed.name:
            raise AssertionError(f"region {region}: pycrate used {ref!r}, our {node.regset} says {typed.name}")
        return {"regionId": region, "regExtValue": from_pycrate(schema, typed, value)}
    if k == "OPEN":
        ref, value = v
        return bytes(value)
    return v


# --- whole PDUs ------------------------------------------------------------------------------


def pycrate_encode(codec, kind, value: dict) -> bytes:
    pdu = PDUS[kind.name]
    pdu.set_val(to_pycrate(codec.schema, codec.node(kind), value))
    return pdu.to_uper()


def pycrate_decode(codec, kind, data: bytes) -> dict:
    pdu = PDUS[kind.name]
    pdu.from_uper(data)
    return from_pycrate(codec.schema, codec.node(kind), pdu.get_val())


def pycrate_jer(codec, kind, value: dict) -> Any:
    """pycrate's JER of a value, parsed (``json.loads``)."""
    pdu = PDUS[kind.name]
    pdu.set_val(to_pycrate(codec.schema, codec.node(kind), value))
    return json.loads(pdu.to_jer())


def pycrate_from_jer(codec, kind, text: str) -> dict:
    pdu = PDUS[kind.name]
    pdu.from_jer(text)
    return from_pycrate(codec.schema, codec.node(kind), pdu.get_val())


# --- the two schemas side by side ------------------------------------------------------------


def _size(cs) -> tuple | None:
    """pycrate size / value constraint -> (lower, upper, extensible) of its root."""
    if cs is None:
        return None
    return (cs.lb, cs.ub, cs.ext is not None)


def _ours(b) -> tuple | None:
    """Our Bounds -> (lower, upper, extensible) of the root (a union's first range is the root
    when the constraint is extensible, e.g. SIZE(1..32, ..., 100))."""
    if b is None:
        return None
    if b.ranges and b.extensible:
        lo, hi = b.ranges[0]
        return (lo, hi, True)
    return (b.lo, b.hi, b.extensible)


def schema_differences(codec) -> list[str]:
    """Walk our schema model and pycrate's compiled modules side by side from the six PDUs and list
    every structural difference that could change an encoding: member names and order, OPTIONAL
    and extension members, alternatives, enumeration items, PER-visible ranges and sizes, string
    types, and the types of each regional extension set. Empty when the two agree."""
    schema = codec.schema
    out: list[str] = []
    seen: set[tuple[int, int]] = set()

    def walk(n: Node, p, path: str) -> None:
        if (id(n), id(p)) in seen:
            return
        seen.add((id(n), id(p)))
        if n.kind == "REGEXT":
            if p.TYPE != "SEQUENCE" or list(p._cont.keys()) != ["regionId", "regExtValue"]:
                out.append(f"{path}: RegionalExtension here, {p.TYPE} in pycrate")
                return
            tab = p._cont["regExtValue"]._const_tab
            theirs = {}
            if tab is not None:
                for obj in tab._val.root + (tab._val.ext or []):
                    theirs[obj["id"]] = obj["Type"]
            ours = schema.regset_types(n.regset or "")
            if set(ours) != set(theirs):
                out.append(f"{path}: {n.regset} regions {sorted(ours)}, pycrate {sorted(theirs)}")
            for rid in set(ours) & set(theirs):
                walk(ours[rid], theirs[rid], f"{path}<region {rid}>")
            return
        if n.kind == "STRING":
            if n.string_type != p.TYPE:
                out.append(f"{path}: {n.string_type}, pycrate {p.TYPE}")
            # UTF8String is not a known-multiplier type, so its size constraint is not PER-visible
            # (X.691): pycrate drops it, we keep it for validation only
            if n.string_type != "UTF8String" and _ours(n.size) != _size(p._const_sz):
                out.append(f"{path}: size {_ours(n.size)}, pycrate {_size(p._const_sz)}")
            return
        if n.kind != p.TYPE:
            out.append(f"{path}: {n.kind}, pycrate {p.TYPE}")
            return
        if n.kind in ("SEQUENCE", "CHOICE"):
            names, theirs = [m.name for m in n.members], list(p._cont.keys())
            if names != theirs:
                out.append(f"{path}: members {names}, pycrate {theirs}")
            ext = [m.name for m in n.members if m.extension]
            if ext != list(p._ext or []) or n.extensible != (p._ext is not None):
                out.append(f"{path}: extension {n.extensible} {ext}, pycrate {p._ext}")
            if n.kind == "SEQUENCE":
                opt = [m.name for m in n.members if m.optional and not m.extension]
                if opt != list(p._root_opt):
                    out.append(f"{path}: OPTIONAL {opt}, pycrate {p._root_opt}")
            for m in n.members:
                if m.name in p._cont:
                    walk(m.node, p._cont[m.name], f"{path}.{m.name}")
        elif n.kind == "SEQUENCE OF":
            if _ours(n.size) != _size(p._const_sz):
                out.append(f"{path}: size {_ours(n.size)}, pycrate {_size(p._const_sz)}")
            walk(n.element, p._cont, f"{path}[]")  # type: ignore[arg-type]
        elif n.kind == "INTEGER":
            if _ours(n.value_range) != _size(p._const_val):
                out.append(f"{path}: range {_ours(n.value_range)}, pycrate {_size(p._const_val)}")
        elif n.kind == "ENUMERATED":
            if (n.enum_root, n.enum_ext, n.extensible) != (list(p._root), list(p._ext or []), p._ext is not None):
                out.append(f"{path}: items {n.enum_root} ... {n.enum_ext}, pycrate {p._root} ... {p._ext}")
        elif n.kind in ("BIT STRING", "OCTET STRING"):  # noqa: SIM102  collapsing would fall through the elif chain
            if _ours(n.size) != _size(p._const_sz):
                out.append(f"{path}: size {_ours(n.size)}, pycrate {_size(p._const_sz)}")

    from rsu import catalog

    for kind in catalog.MESSAGES:
        walk(codec.node(kind), PDUS[kind.name], kind.name)
    return out
