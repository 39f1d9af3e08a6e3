"""Walks over values against the schema model: validation, JER (ITU-T X.697) and typed regional extensions.

Python value form (the one asn1tools uses, and the one every rsu layer passes around):

=================  =======================================================
SEQUENCE           ``dict`` (absent OPTIONAL members are left out)
CHOICE             ``(alternative, value)`` tuple
SEQUENCE OF        ``list``
INTEGER            ``int``;  BOOLEAN ``bool``;  NULL ``None``
ENUMERATED         ``str`` (the identifier)
BIT STRING         ``(bytes, number_of_bits)``
OCTET STRING       ``bytes``;  character strings ``str``
RegionalExtension  ``{"regionId": int, "regExtValue": value}`` where the value is *typed*
                   (e.g. the IntersectionState-addGrpC dict) for a region the set knows,
                   else the raw UPER ``bytes`` of the open type
=================  =======================================================

JER form: SEQUENCE -> object, CHOICE -> object with one key, ENUMERATED -> identifier,
OCTET STRING -> hex, BIT STRING of its single root size -> hex (left-aligned, zero-padded; also
``SIZE(8, ...)`` at 8 bits, as pycrate and asn1tools print it), any other BIT STRING (variable size,
or a length outside an extensible root) -> ``{"value": hex, "length": n}``, NULL -> null, regional
extension value -> the JER of its typed value (hex of the raw bytes for an unknown region).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, cast

from rsu.codec.errors import InvalidValueError
from rsu.codec.schema import Bounds, Node, Schema

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})*$")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind_of(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (bytes, bytearray)):
        return "bytes"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, (list, tuple)):
        return "a list"
    return type(v).__name__


def _check_range(b: Bounds | None, n: int, path: str, what: str = "") -> None:
    if b is None or b.extensible or b.contains(n):
        return
    label = f"{what} " if what else ""
    if b.ranges and (b.lo is None or n >= b.lo) and (b.hi is None or n <= b.hi):
        raise InvalidValueError(path, f"{label}{n} is not in {b.describe()}")
    if b.lo is not None and n < b.lo:
        raise InvalidValueError(path, f"{label}{n} < {b.lo} (allowed {b.describe()})")
    raise InvalidValueError(path, f"{label}{n} > {b.hi} (allowed {b.describe()})")


def _check_string(node: Node, s: str, path: str) -> None:
    _check_range(node.size, len(s), path, "length")
    st = node.string_type
    if st in ("IA5String",) and not s.isascii():
        raise InvalidValueError(path, "IA5String must be ASCII")
    if st in ("VisibleString", "PrintableString") and not all(" " <= c <= "~" for c in s):
        raise InvalidValueError(path, f"{st} allows printable ASCII only")
    if st == "NumericString" and not all(c.isdigit() or c == " " for c in s):
        raise InvalidValueError(path, "NumericString allows digits and space only")


UNKNOWN_EXTENSION = "an extension this build's schema does not know (sent by a newer version?)"


def _enum_check(node: Node, v: Any, path: str) -> None:
    if v is None and node.extensible:
        raise InvalidValueError(path, f"{UNKNOWN_EXTENSION}: unknown {node.label} value")
    if not isinstance(v, str):
        raise InvalidValueError(path, f"expected an enumeration identifier, found {_kind_of(v)}")
    if v not in node.enum_root and v not in node.enum_ext:
        allowed = ", ".join(node.enum_root + node.enum_ext)
        raise InvalidValueError(path, f"unknown value {v!r} (expected one of: {allowed})")


def _check_groups(node: Node, v: dict[str, Any], path: str) -> None:
    """An extension addition group that is present must carry its mandatory members."""
    present = {m.group for m in node.members if m.group is not None and m.name in v}
    for m in node.members:
        if m.group in present and not m.optional and m.name not in v:
            others = ", ".join(x.name for x in node.members if x.group == m.group and x.name in v)
            raise InvalidValueError(
                _join(path, m.name), f"missing (mandatory in its extension group, which {others} makes present)"
            )


def _region_node(schema: Schema, node: Node, region: int | None) -> Node | None:
    return None if region is None else schema.regset_types(node.regset or "").get(region)


# --- validation of Python values --------------------------------------------------------------


def validate(schema: Schema, node: Node, v: Any, path: str = "") -> None:
    """Raise InvalidValueError (naming the field path) unless ``v`` fits ``node``."""
    k = node.kind
    if k == "SEQUENCE":
        if not isinstance(v, dict):
            raise InvalidValueError(path, f"expected an object ({node.label}), found {_kind_of(v)}")
        members = node.member_map
        for name in v:
            if name not in members:
                raise InvalidValueError(_join(path, str(name)), f"unknown field of {node.label}")
        for m in node.members:
            if m.name in v:
                if m.presence == "ABSENT":
                    raise InvalidValueError(_join(path, m.name), "must be absent here")
                validate(schema, m.node, v[m.name], _join(path, m.name))
            elif not (m.optional or m.extension) or m.presence == "PRESENT":
                raise InvalidValueError(_join(path, m.name), f"missing (mandatory in {node.label})")
        _check_groups(node, v, path)
    elif k == "CHOICE":
        if isinstance(v, tuple) and len(v) == 2 and v[0] is None and node.extensible:
            raise InvalidValueError(path, f"{UNKNOWN_EXTENSION}: unknown {node.label} alternative")
        if not (isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str)):
            raise InvalidValueError(
                path, f"expected a choice (alternative, value) of {node.label}, found {_kind_of(v)}"
            )
        chosen = node.member_map.get(v[0])
        if chosen is None:
            allowed = ", ".join(node.member_map)
            raise InvalidValueError(path, f"unknown alternative {v[0]!r} of {node.label} (expected one of: {allowed})")
        validate(schema, chosen.node, v[1], _join(path, v[0]))
    elif k == "SEQUENCE OF":
        if not isinstance(v, list):
            raise InvalidValueError(path, f"expected a list ({node.label}), found {_kind_of(v)}")
        _check_range(node.size, len(v), path, "number of items")
        for i, item in enumerate(v):
            validate(schema, node.element, item, f"{path}[{i}]")  # type: ignore[arg-type]
    elif k == "INTEGER":
        if not isinstance(v, int) or isinstance(v, bool):
            raise InvalidValueError(path, f"expected an integer, found {_kind_of(v)}")
        _check_range(node.value_range, v, path)
    elif k == "BOOLEAN":
        if not isinstance(v, bool):
            raise InvalidValueError(path, f"expected a boolean, found {_kind_of(v)}")
    elif k == "NULL":
        if v is not None:
            raise InvalidValueError(path, f"expected null, found {_kind_of(v)}")
    elif k == "ENUMERATED":
        _enum_check(node, v, path)
    elif k == "BIT STRING":
        if not (
            isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], (bytes, bytearray)) and isinstance(v[1], int)
        ):
            raise InvalidValueError(path, f"expected a bit string (bytes, length), found {_kind_of(v)}")
        if len(v[0]) * 8 < v[1] or v[1] < 0:
            raise InvalidValueError(path, f"bit string of {v[1]} bits needs {(v[1] + 7) // 8} bytes, got {len(v[0])}")
        _check_range(node.size, v[1], path, "number of bits")
    elif k == "OCTET STRING":
        if not isinstance(v, (bytes, bytearray)):
            raise InvalidValueError(path, f"expected bytes, found {_kind_of(v)}")
        _check_range(node.size, len(v), path, "number of octets")
    elif k == "STRING":
        if not isinstance(v, str):
            raise InvalidValueError(path, f"expected a string, found {_kind_of(v)}")
        _check_string(node, v, path)
    elif k == "REGEXT":
        if (
            not isinstance(v, dict)
            or set(v) - {"regionId", "regExtValue"}
            or "regionId" not in v
            or "regExtValue" not in v
        ):
            raise InvalidValueError(path, "expected an object with regionId and regExtValue")
        region = v["regionId"]
        if not isinstance(region, int) or isinstance(region, bool) or not 0 <= region <= 255:
            raise InvalidValueError(_join(path, "regionId"), f"expected an integer 0..255, found {region!r}")
        typed = _region_node(schema, node, region)
        if typed is None:
            if not isinstance(v["regExtValue"], (bytes, bytearray)):
                raise InvalidValueError(
                    _join(path, "regExtValue"), f"region {region} is not known in {node.regset}: give the raw bytes"
                )
        else:
            validate(schema, typed, v["regExtValue"], _join(path, "regExtValue"))
    elif k == "OPEN":
        if not isinstance(v, (bytes, bytearray)):
            raise InvalidValueError(path, f"expected bytes (open type), found {_kind_of(v)}")
    else:  # pragma: no cover
        raise InvalidValueError(path, f"unsupported type {k}")


# --- JER -------------------------------------------------------------------------------------


def _fixed_bits(node: Node) -> bool:
    s = node.size
    return s is not None and not s.extensible and s.lo is not None and s.lo == s.hi


def _root_bits(node: Node) -> int | None:
    """The single root size of a BIT STRING (``SIZE(8)`` or ``SIZE(8, ...)``), else None."""
    s = node.size
    return s.lo if s is not None and s.lo is not None and s.lo == s.hi else None


def to_jer(schema: Schema, node: Node, v: Any) -> Any:
    """Python value -> JSON-able JER value (no validation; the value is assumed valid)."""
    k = node.kind
    if k == "SEQUENCE":
        mm = node.member_map
        return {name: to_jer(schema, mm[name].node, item) for name, item in v.items() if name in mm}
    if k == "CHOICE":
        alt, item = v
        member = node.member_map.get(alt)
        if member is None:
            raise InvalidValueError("", f"{node.label}: no JER for alternative {alt!r}")
        return {alt: to_jer(schema, member.node, item)}
    if k == "SEQUENCE OF":
        return [to_jer(schema, node.element, item) for item in v]  # type: ignore[arg-type]
    if k in ("INTEGER", "BOOLEAN", "NULL", "ENUMERATED", "STRING"):
        return v
    if k == "BIT STRING":
        data, nbits = v
        data = bytes(data[: (nbits + 7) // 8])
        if nbits % 8:
            data = data[:-1] + bytes([data[-1] & (0xFF << (8 - nbits % 8)) & 0xFF])
        if nbits == _root_bits(node):  # plain hex at the root size, extensible or not (pycrate, asn1tools)
            return data.hex()
        return {"value": data.hex(), "length": nbits}
    if k in ("OCTET STRING", "OPEN"):
        return bytes(v).hex()
    if k == "REGEXT":
        typed = _region_node(schema, node, v["regionId"])
        value = v["regExtValue"]
        if typed is None or isinstance(value, (bytes, bytearray)):
            return {"regionId": v["regionId"], "regExtValue": bytes(value).hex()}
        return {"regionId": v["regionId"], "regExtValue": to_jer(schema, typed, value)}
    raise InvalidValueError("", f"unsupported type {k}")  # pragma: no cover


def _hex(obj: Any, path: str) -> bytes:
    if not isinstance(obj, str) or not _HEX.match(obj):
        raise InvalidValueError(path, f"expected a hex string (even number of hex digits), found {obj!r:.40}")
    return bytes.fromhex(obj)


def from_jer(schema: Schema, node: Node, obj: Any, path: str = "") -> Any:
    """JER JSON value -> Python value, validating shape and constraints (errors name the field path)."""
    k = node.kind
    if k == "SEQUENCE":
        if not isinstance(obj, dict):
            raise InvalidValueError(path, f"expected an object ({node.label}), found {_kind_of(obj)}")
        mm = node.member_map
        out = {}
        for name, item in obj.items():
            m = mm.get(name)
            if m is None:
                raise InvalidValueError(_join(path, str(name)), f"unknown field of {node.label}")
            if m.presence == "ABSENT":
                raise InvalidValueError(_join(path, name), "must be absent here")
            out[name] = from_jer(schema, m.node, item, _join(path, name))
        for m in node.members:
            if m.name not in out and (not (m.optional or m.extension) or m.presence == "PRESENT"):
                raise InvalidValueError(_join(path, m.name), f"missing (mandatory in {node.label})")
        _check_groups(node, out, path)
        # keep schema order: easier to read back, and what asn1tools returns on decode
        return {m.name: out[m.name] for m in node.members if m.name in out}
    if k == "CHOICE":
        if not isinstance(obj, dict) or len(obj) != 1:
            allowed = ", ".join(node.member_map)
            raise InvalidValueError(path, f"expected an object with exactly one of: {allowed}")
        ((alt, item),) = obj.items()
        m = node.member_map.get(alt)
        if m is None:
            allowed = ", ".join(node.member_map)
            raise InvalidValueError(path, f"unknown alternative {alt!r} of {node.label} (expected one of: {allowed})")
        return (alt, from_jer(schema, m.node, item, _join(path, alt)))
    if k == "SEQUENCE OF":
        if not isinstance(obj, list):
            raise InvalidValueError(path, f"expected a list ({node.label}), found {_kind_of(obj)}")
        _check_range(node.size, len(obj), path, "number of items")
        return [from_jer(schema, node.element, item, f"{path}[{i}]") for i, item in enumerate(obj)]  # type: ignore
    if k == "INTEGER":
        if isinstance(obj, str) and obj in node.named_numbers:
            obj = node.named_numbers[obj]
        if not isinstance(obj, int) or isinstance(obj, bool):
            raise InvalidValueError(path, f"expected an integer, found {_kind_of(obj)}")
        _check_range(node.value_range, obj, path)
        return obj
    if k == "BOOLEAN":
        if not isinstance(obj, bool):
            raise InvalidValueError(path, f"expected true or false, found {_kind_of(obj)}")
        return obj
    if k == "NULL":
        if obj is not None:
            raise InvalidValueError(path, f"expected null, found {_kind_of(obj)}")
        return None
    if k == "ENUMERATED":
        _enum_check(node, obj, path)
        return obj
    if k == "BIT STRING":
        root = _root_bits(node)
        if root is not None and _fixed_bits(node):  # a fixed size is always its root size
            data = _hex(obj, path)
            nbits = root
            if len(data) != (nbits + 7) // 8:
                raise InvalidValueError(
                    path, f"expected {nbits} bits as {(nbits + 7) // 8} bytes of hex, found {len(data)} bytes"
                )
        elif isinstance(obj, str) and root is not None:
            # SIZE(n, ...) at its root size: bare hex, as we, pycrate and asn1tools print it; the
            # {"value", "length"} form (needed for lengths outside the root) is read below
            data = _hex(obj, path)
            nbits = root
            if len(data) != (nbits + 7) // 8:
                raise InvalidValueError(
                    path,
                    f'a hex string must hold the {nbits} root bits; use {{"value": hex, "length": n}} for other sizes',
                )
        else:
            if not isinstance(obj, dict) or set(obj) != {"value", "length"}:
                raise InvalidValueError(path, 'expected {"value": hex, "length": number of bits}')
            data = _hex(obj["value"], _join(path, "value"))
            nbits = obj["length"]
            if not isinstance(nbits, int) or isinstance(nbits, bool) or nbits < 0:
                raise InvalidValueError(_join(path, "length"), f"expected a bit count, found {nbits!r}")
            if len(data) != (nbits + 7) // 8:
                raise InvalidValueError(path, f"{nbits} bits need {(nbits + 7) // 8} bytes of hex, found {len(data)}")
            _check_range(node.size, nbits, path, "number of bits")
        return (data, nbits)
    if k == "OCTET STRING":
        data = _hex(obj, path)
        _check_range(node.size, len(data), path, "number of octets")
        return data
    if k == "OPEN":
        return _hex(obj, path)
    if k == "STRING":
        if not isinstance(obj, str):
            raise InvalidValueError(path, f"expected a string, found {_kind_of(obj)}")
        _check_string(node, obj, path)
        return obj
    if k == "REGEXT":
        if not isinstance(obj, dict) or set(obj) != {"regionId", "regExtValue"}:
            raise InvalidValueError(path, "expected an object with regionId and regExtValue")
        region = obj["regionId"]
        if not isinstance(region, int) or isinstance(region, bool) or not 0 <= region <= 255:
            raise InvalidValueError(_join(path, "regionId"), f"expected an integer 0..255, found {region!r}")
        typed = _region_node(schema, node, region)
        if typed is None:
            return {"regionId": region, "regExtValue": _hex(obj["regExtValue"], _join(path, "regExtValue"))}
        return {
            "regionId": region,
            "regExtValue": from_jer(schema, typed, obj["regExtValue"], _join(path, "regExtValue")),
        }
    raise InvalidValueError(path, f"unsupported type {k}")  # pragma: no cover


# --- JER -> Python value, compiled ----------------------------------------------------------------

JerConverter = Callable[[Any], Any]
_F = TypeVar("_F", bound=Callable[[Any], Any])


def _compiled(table: dict[int, _F], node: Node, compile_node: Callable[[Node], _F]) -> _F:
    """The closure ``table`` keeps for ``node``, compiled on first use (a recursive type reaches itself
    through a forwarder while it is being compiled)."""
    fn = table.get(id(node))
    if fn is None:
        cell: list[_F] = []
        table[id(node)] = cast(_F, lambda v: cell[0](v))
        fn = compile_node(node)
        cell.append(fn)
        table[id(node)] = fn
    return fn


_MISSING = object()


def _under(head: str, e: InvalidValueError) -> InvalidValueError:
    """``e`` (its path relative to a child) seen from the parent: ``head`` (a member name or ``[i]``) first."""
    tail = e.path
    path = head if not tail else head + ("" if tail.startswith("[") else ".") + tail
    return InvalidValueError(path, e.reason)


class JerReader:
    """:func:`from_jer` compiled: one closure per schema node (made at first use, kept), same values and
    same errors (path and reason) as the walker, without its per-node dispatch or eager path strings.

    Paths are built only when an error unwinds (each level puts its member name or index in front), so
    a valid value costs no string work. tests/test_codec_jer_reader.py checks it against :func:`from_jer`.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._conv: dict[int, JerConverter] = {}

    def read(self, node: Node, obj: Any, path: str = "") -> Any:
        """JER JSON value -> Python value of ``node`` (as :func:`from_jer`; errors name the field path)."""
        try:
            return self.converter(node)(obj)
        except InvalidValueError as e:
            if not path:
                raise
            raise _under(path, e) from None

    def converter(self, node: Node) -> JerConverter:
        return _compiled(self._conv, node, self._compile)

    def _compile(self, node: Node) -> JerConverter:
        k = node.kind
        schema = self.schema
        label = node.label
        if k == "SEQUENCE":
            table = {m.name: (m.presence == "ABSENT", self.converter(m.node)) for m in node.members}
            mandatory = [m.name for m in node.members if not (m.optional or m.extension) or m.presence == "PRESENT"]
            # schema order, one pass: (name, converter, must be absent, must be present)
            fields = [(m.name, table[m.name][1], table[m.name][0], m.name in mandatory) for m in node.members]
            groups = any(m.group is not None for m in node.members)

            def named_error(obj: dict[str, Any]) -> NoReturn:
                """The walker's first error for ``obj`` (members in the object's order, then the missing ones)."""
                for name, item in obj.items():
                    entry = table.get(name)
                    if entry is None:
                        raise InvalidValueError(str(name), f"unknown field of {label}")
                    if entry[0]:
                        raise InvalidValueError(name, "must be absent here")
                    try:
                        entry[1](item)
                    except InvalidValueError as e:
                        raise _under(name, e) from None
                for name in mandatory:
                    if name not in obj:
                        raise InvalidValueError(name, f"missing (mandatory in {label})")
                raise AssertionError("unreachable: a failing object passed again")  # pragma: no cover

            def sequence(obj: Any) -> Any:
                if not isinstance(obj, dict):
                    raise InvalidValueError("", f"expected an object ({label}), found {_kind_of(obj)}")
                out = {}
                complete = False
                try:  # the members in schema order (the order of the value made); any problem: see named_error
                    for name, conv, absent, needed in fields:
                        item = obj.get(name, _MISSING)
                        if item is not _MISSING:
                            if absent:
                                break
                            out[name] = conv(item)
                        elif needed:
                            break
                    else:
                        complete = len(out) == len(obj)  # else a member the type does not have
                except InvalidValueError:
                    pass
                if not complete:
                    named_error(obj)
                if groups:  # last, as in the walker: every member is fine on its own
                    _check_groups(node, out, "")
                return out

            return sequence
        if k == "CHOICE":
            alternatives = {m.name: self.converter(m.node) for m in node.members}
            allowed = ", ".join(node.member_map)

            def choice(obj: Any) -> Any:
                if not isinstance(obj, dict) or len(obj) != 1:
                    raise InvalidValueError("", f"expected an object with exactly one of: {allowed}")
                ((alt, item),) = obj.items()
                conv = alternatives.get(alt)
                if conv is None:
                    raise InvalidValueError("", f"unknown alternative {alt!r} of {label} (expected one of: {allowed})")
                try:
                    return (alt, conv(item))
                except InvalidValueError as e:
                    raise _under(alt, e) from None

            return choice
        if k == "SEQUENCE OF":
            assert node.element is not None
            element = self.converter(node.element)
            size = node.size

            def sequence_of(obj: Any) -> Any:
                if not isinstance(obj, list):
                    raise InvalidValueError("", f"expected a list ({label}), found {_kind_of(obj)}")
                _check_range(size, len(obj), "", "number of items")
                try:
                    return [element(item) for item in obj]
                except InvalidValueError:
                    pass
                for i, item in enumerate(obj):  # again, to name the first item that fails (conversion is pure)
                    try:
                        element(item)
                    except InvalidValueError as e:
                        raise _under(f"[{i}]", e) from None
                raise AssertionError("unreachable: a failing item failed again")  # pragma: no cover

            return sequence_of
        if k == "INTEGER":
            named = node.named_numbers
            bounds = node.value_range
            lo = hi = None
            check = bounds is not None and not bounds.extensible
            if check and bounds is not None and not bounds.ranges:
                lo, hi = bounds.lo, bounds.hi

            def integer(obj: Any) -> Any:
                if obj.__class__ is not int:
                    if isinstance(obj, str) and obj in named:
                        obj = named[obj]
                    if not isinstance(obj, int) or isinstance(obj, bool):
                        raise InvalidValueError("", f"expected an integer, found {_kind_of(obj)}")
                if check and (
                    bounds.ranges  # type: ignore[union-attr]
                    or (lo is not None and obj < lo)
                    or (hi is not None and obj > hi)
                ):
                    _check_range(bounds, obj, "")
                return obj

            return integer
        if k == "ENUMERATED":
            allowed_ids = frozenset(node.enum_root) | frozenset(node.enum_ext)

            def enumerated(obj: Any) -> Any:
                if obj.__class__ is not str or obj not in allowed_ids:
                    _enum_check(node, obj, "")
                return obj

            return enumerated
        if k == "REGEXT":

            def regional(obj: Any) -> Any:
                if not isinstance(obj, dict) or set(obj) != {"regionId", "regExtValue"}:
                    raise InvalidValueError("", "expected an object with regionId and regExtValue")
                region = obj["regionId"]
                if not isinstance(region, int) or isinstance(region, bool) or not 0 <= region <= 255:
                    raise InvalidValueError("regionId", f"expected an integer 0..255, found {region!r}")
                typed = _region_node(schema, node, region)
                if typed is None:
                    return {"regionId": region, "regExtValue": _hex(obj["regExtValue"], "regExtValue")}
                try:
                    return {"regionId": region, "regExtValue": self.converter(typed)(obj["regExtValue"])}
                except InvalidValueError as e:
                    raise _under("regExtValue", e) from None

            return regional

        def leaf(obj: Any) -> Any:  # BOOLEAN, NULL, strings, BIT/OCTET STRING, open types: the walker's own code
            return from_jer(schema, node, obj, "")

        root = _root_bits(node) if k == "BIT STRING" else None
        if root is not None:  # the common form, bare hex of the root size, read here; any other: the walker's code
            digits = 2 * ((root + 7) // 8)
            hex_digits = _HEX.match

            def bits(obj: Any) -> Any:
                if obj.__class__ is str and len(obj) == digits and hex_digits(obj):
                    return (bytes.fromhex(obj), root)
                return leaf(obj)

            return bits
        return leaf


# --- typed regional extensions <-> open-type bytes ---------------------------------------------


Check = Callable[[Any], bool]


def _fits(b: Bounds | None) -> Callable[[int], bool] | None:
    """``n -> b admits n`` as :func:`_check_range` decides it; None when it admits everything."""
    if b is None or b.extensible:
        return None
    if b.ranges:
        return b.contains
    lo, hi = b.lo, b.hi
    if lo is None and hi is None:
        return None
    if lo is None:
        return lambda n: n <= hi  # type: ignore[operator]
    if hi is None:
        return lambda n: n >= lo
    return lambda n: lo <= n <= hi


def _any_text(s: str) -> bool:
    return True


def _never(v: Any) -> bool:
    return False


def _printable(s: str) -> bool:
    return all(" " <= c <= "~" for c in s)


def _numeric(s: str) -> bool:
    return all(c.isdigit() or c == " " for c in s)


class ValueCheck:
    """:func:`validate` compiled to a yes/no answer: one closure per schema node (made at first use, kept).

    ``ok(node, v)`` is True only when :func:`validate` would accept ``v`` (the closures make the same
    checks, in any order, without path strings); when it says False, call :func:`validate` for the
    error naming the field (the one authority on the message). The facilities codec uses it on every
    decoded PDU, where nearly every value is valid: the walker's per-node dispatch and path joins cost
    more than the decode itself. Nodes it has no fast form for go through :func:`validate` as they are.
    tests/test_codec_value_check.py checks it against :func:`validate`.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._checks: dict[int, Check] = {}

    def ok(self, node: Node, v: Any) -> bool:
        """Whether :func:`validate` accepts ``v`` as a value of ``node`` (never raises)."""
        try:
            return self.check(node)(v)
        except Exception:  # noqa: BLE001 - odd input (unhashable, ...): let the walker name it
            return False

    def check(self, node: Node) -> Check:
        return _compiled(self._checks, node, self._compile)

    def _walker(self, node: Node) -> Check:
        schema = self.schema

        def walk(v: Any) -> bool:
            try:
                validate(schema, node, v)
            except InvalidValueError:
                return False
            return True

        return walk

    def _compile(self, node: Node) -> Check:
        k = node.kind
        if k == "SEQUENCE":
            # an unknown member is a KeyError below (ok() answers False: the walker names it)
            table = {m.name: (_never if m.presence == "ABSENT" else self.check(m.node)) for m in node.members}
            mandatory = frozenset(
                m.name for m in node.members if not (m.optional or m.extension) or m.presence == "PRESENT"
            )
            groups = any(m.group is not None for m in node.members)

            def sequence(v: Any) -> bool:
                if type(v) is not dict:
                    return False
                for name, item in v.items():
                    if not table[name](item):  # must be absent, or not valid
                        return False
                if not v.keys() >= mandatory:
                    return False
                if groups:
                    try:
                        _check_groups(node, v, "")
                    except InvalidValueError:
                        return False
                return True

            return sequence
        if k == "CHOICE":
            alternatives = {m.name: self.check(m.node) for m in node.members}

            def choice(v: Any) -> bool:
                if type(v) is not tuple or len(v) != 2:
                    return False
                c = alternatives.get(v[0]) if isinstance(v[0], str) else None
                return c is not None and c(v[1])

            return choice
        if k == "SEQUENCE OF" and node.element is not None:
            item_ok = self.check(node.element)
            size_ok = _fits(node.size)

            def sequence_of(v: Any) -> bool:
                if type(v) is not list or (size_ok is not None and not size_ok(len(v))):
                    return False
                return all(map(item_ok, v))

            return sequence_of
        if k == "INTEGER":
            b = node.value_range
            if b is not None and not b.extensible and not b.ranges and b.lo is not None and b.hi is not None:
                lo, hi = b.lo, b.hi  # the usual case, in one call
                return lambda v: type(v) is int and lo <= v <= hi
            value_ok = _fits(b)
            if value_ok is None:
                return lambda v: type(v) is int
            return lambda v: type(v) is int and value_ok(v)
        if k == "BOOLEAN":
            return lambda v: type(v) is bool
        if k == "NULL":
            return lambda v: v is None
        if k == "ENUMERATED":
            names = frozenset(node.enum_root) | frozenset(node.enum_ext)
            return lambda v: type(v) is str and v in names
        if k == "OCTET STRING":
            octets_ok = _fits(node.size)
            if octets_ok is None:
                return lambda v: isinstance(v, (bytes, bytearray))
            return lambda v: isinstance(v, (bytes, bytearray)) and octets_ok(len(v))
        if k == "BIT STRING":
            bits_ok = _fits(node.size)

            def bit_string(v: Any) -> bool:
                if type(v) is not tuple or len(v) != 2 or not isinstance(v[0], (bytes, bytearray)):
                    return False
                n = v[1]
                return type(n) is int and 0 <= n <= len(v[0]) * 8 and (bits_ok is None or bits_ok(n))

            return bit_string
        if k == "OPEN":
            return lambda v: isinstance(v, (bytes, bytearray))
        if k == "REGEXT":
            schema = self.schema
            typed: dict[int, Check] = {}

            def regional(v: Any) -> bool:
                if type(v) is not dict or len(v) != 2 or "regionId" not in v or "regExtValue" not in v:
                    return False
                region = v["regionId"]
                if type(region) is not int or not 0 <= region <= 255:
                    return False
                c = typed.get(region)
                if c is None:
                    typed_node = _region_node(schema, node, region)
                    if typed_node is None:
                        return isinstance(v["regExtValue"], (bytes, bytearray))
                    c = typed[region] = self.check(typed_node)
                return c(v["regExtValue"])

            return regional
        if k == "STRING":
            length_ok = _fits(node.size)
            st = node.string_type
            alphabet: Callable[[str], bool] = str.isascii if st == "IA5String" else _any_text
            if st in ("VisibleString", "PrintableString"):
                alphabet = _printable
            elif st == "NumericString":
                alphabet = _numeric

            def string(v: Any) -> bool:
                return type(v) is str and (length_ok is None or length_ok(len(v))) and alphabet(v)

            return string
        return self._walker(node)


class RegionalTransform:
    """Converts typed regExtValue values to the raw open-type bytes asn1tools wants, and back.

    Only walks the parts of the type tree that can hold a RegionalExtension, so messages
    without regional data cost one dictionary look-up per container.
    """

    def __init__(
        self, schema: Schema, encode_type: Callable[[str, Any], bytes], decode_type: Callable[[str, bytes], Any]
    ) -> None:
        self.schema = schema
        self._encode_type = encode_type
        self._decode_type = decode_type
        self._may: dict[int, bool] = {}

    def may_contain(self, node: Node) -> bool:
        key = id(node)
        cached = self._may.get(key)
        if cached is not None:
            return cached
        self._may[key] = False  # recursion guard: a cycle adds nothing new
        if node.kind == "REGEXT":
            result = True
        elif node.kind in ("SEQUENCE", "CHOICE"):
            result = any(self.may_contain(m.node) for m in node.members)
        elif node.kind == "SEQUENCE OF":
            result = self.may_contain(node.element)  # type: ignore[arg-type]
        else:
            result = False
        self._may[key] = result
        return result

    def _walk(self, node: Node, v: Any, leaf: Callable[[Node, dict[str, Any]], dict[str, Any]]) -> Any:
        if not self.may_contain(node):
            return v
        k = node.kind
        if k == "REGEXT":
            return leaf(node, v)
        if k == "SEQUENCE":
            mm = node.member_map
            return {name: (self._walk(mm[name].node, item, leaf) if name in mm else item) for name, item in v.items()}
        if k == "CHOICE":
            alt, item = v
            m = node.member_map.get(alt)
            return (alt, self._walk(m.node, item, leaf)) if m else v
        if k == "SEQUENCE OF":
            return [self._walk(node.element, item, leaf) for item in v]  # type: ignore[arg-type]
        return v

    # a region's node is a named type (Schema.regset_types), so its label is its type name

    def pack(self, node: Node, v: Any) -> Any:
        """Typed regExtValue -> bytes (for encoding)."""

        def leaf(n: Node, ext: dict[str, Any]) -> dict[str, Any]:
            value = ext.get("regExtValue")
            if isinstance(value, (bytes, bytearray)):
                return ext
            typed = _region_node(self.schema, n, ext.get("regionId"))
            if typed is None:
                return ext  # validation reports it
            inner = self.pack(typed, value)
            return {"regionId": ext["regionId"], "regExtValue": self._encode_type(typed.label, inner)}

        return self._walk(node, v, leaf)

    def unpack(self, node: Node, v: Any) -> Any:
        """Open-type bytes -> typed regExtValue (after decoding); unknown regions stay bytes."""

        def leaf(n: Node, ext: dict[str, Any]) -> dict[str, Any]:
            typed = _region_node(self.schema, n, ext.get("regionId"))
            if typed is None:
                return ext
            inner = self._decode_type(typed.label, ext["regExtValue"])
            return {"regionId": ext["regionId"], "regExtValue": self.unpack(typed, inner)}

        return self._walk(node, v, leaf)
