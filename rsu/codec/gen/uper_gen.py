"""Generator of the plain-Python UPER codec for the six IS PDUs (``rsu/codec/generated/uper.py``).

    python -m rsu.codec.gen            # rewrite rsu/codec/generated/uper.py
    python -m rsu.codec.gen --check    # exit 1 if the committed module differs

It walks two trees side by side: asn1tools' compiled UPER type tree (the PER facts: bit widths,
effective ranges after ``asn1files.per_effective_constraints``, enumeration indexes, extension
additions and groups, alphabets) and our schema model (``rsu.codec.schema``: type names for the
functions, and which Reg-* object set each RegionalExtension carries, so typed regional values are
encoded and decoded in place instead of in a separate pass). Each SEQUENCE, CHOICE, SEQUENCE OF and
RegionalExtension becomes one encode and one decode function, named after its type; primitives are
written inline, and so are SEQUENCEs and SEQUENCE OFs nested up to INLINE_DEPTH levels inside a
SEQUENCE or SEQUENCE OF function (a Python call costs more than most of them). A peephole pass then
joins consecutive fixed-width fields into one append or one read.

The decoder raises ``uper_runtime.OutOfSchema`` for any value ``rsu.codec.values.validate`` would
refuse (ranges and sizes PER can carry beyond their bounds, unknown enumeration values and CHOICE
alternatives, WITH COMPONENTS presence; the checks come from the schema model, and are left out
where the PER form admits nothing else), so what it returns needs no separate check.

The generated module is typed for mypy --strict: values in the Python value form are ``Any`` (the
codec's JSON-like boundary), bit accumulators and bit positions ``int``.

The generated code reproduces asn1tools 0.169 (with ``rsu.codec.asn1patches``) bit for bit, quirks
included; a construct this generator does not know stops it with an error (nothing is guessed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asn1tools

from rsu import catalog
from rsu.codec.asn1files import compile_set
from rsu.codec.schema import Member, Node, Schema
from rsu.codec.uper_runtime import source_digest

OUTPUT = Path(__file__).resolve().parent.parent / "generated" / "uper.py"
CONSTRUCTED = ("SEQUENCE", "CHOICE", "SEQUENCE OF", "REGEXT")
DIRECT_APPENDS = 2  # a list's item written with at most this many unconditional appends needs no accumulator
INLINE_DEPTH = 3  # nesting levels of SEQUENCE / SEQUENCE OF written in place within one function

# the generated functions of each constructed type: a value (Python value form) in, its bits out (after a
# sentinel 1 bit); the whole input as one int and the bits left unread in, (value, bits left unread) out
_ENC_DEF = "def e_{}(v: Any) -> int:"
_DEC_DEF = "def d_{}(x: int, q: int) -> tuple[Any, int]:"

# asn1tools' compiled UPER types (``t`` below) and its specification are untyped library objects
AsnType = Any


def _resolve(t: AsnType) -> AsnType:
    while type(t).__name__ == "Recursive":
        t = t._inner
    return t


def _element(node: Node, name: str) -> Node:
    """The element type of a SEQUENCE OF (always known for one; an error names the type if not)."""
    if node.element is None:
        raise NotImplementedError(f"{name}: SEQUENCE OF without an element type")
    return node.element


def _nbits(size: int) -> int:
    return 0 if size == 0 else size.bit_length()


def _outside(b: Any, expr: str, span: tuple[int, int] | None) -> str | None:
    """A condition true when ``expr`` is outside the bounds ``b`` (a schema Bounds, as values._check_range
    decides: extensible bounds admit anything), or None when ``span`` (what PER can give) is inside."""
    if b is None or b.extensible:
        return None
    ranges = b.ranges or ((b.lo, b.hi),)
    if span is not None and any((lo is None or lo <= span[0]) and (hi is None or span[1] <= hi) for lo, hi in ranges):
        return None
    if len(ranges) > 1:
        inside = " or ".join(
            " and ".join([f"{expr} >= {lo}"] * (lo is not None) + [f"{expr} <= {hi}"] * (hi is not None)) or "True"
            for lo, hi in ranges
        )
        return f"not ({inside})"
    lo, hi = ranges[0]
    if span is not None:  # a side PER keeps to needs no test
        lo = None if lo is not None and span[0] >= lo else lo
        hi = None if hi is not None and span[1] <= hi else hi
    tests = [f"{expr} < {lo}"] * (lo is not None) + [f"{expr} > {hi}"] * (hi is not None)
    return " or ".join(tests) or None


class _Fn:
    def __init__(self, name: str, t: AsnType, node: Node) -> None:
        self.name, self.t, self.node = name, t, node


class Generator:
    def __init__(self, schema: Schema, spec: Any) -> None:
        self.schema = schema
        self.spec = spec
        self.fns: dict[int, _Fn] = {}
        self.order: list[_Fn] = []
        self.names: set[str] = set()
        self.consts: list[str] = []
        self.const_names: dict[str, str] = {}
        self.tmp = 0
        self.stack: list[int] = []  # nodes being written (an inlined type never inlines itself)
        self.loops = 0  # lists being decoded in place, one in another
        self.list_accs: set[str] = set()  # accumulators (of the function being written) a list goes into

    # --- naming --------------------------------------------------------------------------------
    def fn(self, t: AsnType, node: Node, hint: str) -> str:
        f = self.fns.get(id(node))
        if f is None:
            base = re.sub(r"\W", "_", node.name or hint)
            name, i = base, 2
            while name in self.names:
                name, i = f"{base}_{i}", i + 1
            self.names.add(name)
            f = self.fns[id(node)] = _Fn(name, _resolve(t), node)
            self.order.append(f)
        return f.name

    def const(self, text: str, annotation: str, hint: str) -> str:
        """A module-level constant (one per distinct value and type) of the generated code; its name."""
        key = f"{annotation} = {text}"
        name = self.const_names.get(key)
        if name is None:
            name = f"_{re.sub(r'[^A-Za-z0-9]', '_', hint)}_{len(self.consts)}"
            self.const_names[key] = name
            self.consts.append(f"{name}: {key}")
        return name

    def var(self, stem: str) -> str:
        self.tmp += 1
        return f"{stem}{self.tmp}"

    def _inline(self, t: AsnType, node: Node) -> bool:
        """Write a SEQUENCE or SEQUENCE OF in place of a call (a Python call costs more than the
        few operations most of them are), at most INLINE_DEPTH levels deep, never a type inside itself;
        a flat SEQUENCE (of primitives only: a few lines) at any depth."""
        return (
            node.kind in ("SEQUENCE", "SEQUENCE OF")
            and len(self.stack) > 0
            and (len(self.stack) <= INLINE_DEPTH or self._flat(node))
            and id(node) not in self.stack
            and type(t).__name__ in ("Sequence", "SequenceOf")
        )

    @staticmethod
    def _flat(node: Node) -> bool:
        return node.kind == "SEQUENCE" and all(m.node.kind not in CONSTRUCTED for m in node.member_map.values())

    # --- encoding ------------------------------------------------------------------------------
    def enc(self, t: AsnType, node: Node, expr: str, acc: str, ind: str, hint: str, member: bool = False) -> list[str]:
        """Lines appending the encoding of ``expr`` (a value of ``node``) to the accumulator ``acc``
        (``member``: ``expr`` is a member of the SEQUENCE that ``acc`` holds)."""
        t = _resolve(t)
        cls = type(t).__name__
        inline = self._inline(t, node)
        v = expr if expr.isidentifier() else self.var("v")
        alias = [] if v == expr else [f"{ind}{v} = {expr}"]
        if inline and node.kind == "SEQUENCE":
            # straight into the enclosing accumulator: always as a member of a SEQUENCE (both are short),
            # as a list's item if it has few appends of its own (the rest in lists or calls with their
            # own accumulators): a few appends to a list's long int cost less than a merge
            self.stack.append(id(node))
            body = self._seq_enc(t, node.member_map, node.name or hint, v, acc, ind)
            self.stack.pop()
            if member or sum(1 for line in body if line.startswith(f"{ind}{acc} = ")) <= DIRECT_APPENDS:
                return alias + body
        if inline and member and acc not in self.list_accs:
            # a list in a SEQUENCE whose accumulator holds no list yet: straight into it (it holds
            # little else); in one that does (a list's, or one a list went into) it gets its own
            self.stack.append(id(node))
            body = self._list_enc(t, node, node.name or hint, v, acc, ind)
            self.stack.pop()
            return alias + body
        if inline:
            # in place, into its own short accumulator (appending to a long int is what costs)
            sub = self.var("a")
            self.stack.append(id(node))
            body = (
                self._seq_enc(t, node.member_map, node.name or hint, v, sub, ind)
                if node.kind == "SEQUENCE"
                else self._list_enc(t, node, node.name or hint, v, sub, ind)
            )
            self.stack.pop()
            return (
                alias + [f"{ind}{sub} = 1"] + body + [f"{ind}{acc} = (({acc} - 1) << ({sub}.bit_length() - 1)) + {sub}"]
            )
        if node.kind in CONSTRUCTED:
            # each function builds its own bits from a fresh sentinel (appending to a short int is
            # cheap, to a long one is not); the caller appends them: ((a - 1) << n) + s == a << n | bits
            return [
                f"{ind}s_ = e_{self.fn(t, node, hint)}({expr})",
                f"{ind}{acc} = (({acc} - 1) << (s_.bit_length() - 1)) + s_",
            ]
        if cls == "Integer":
            if t.number_of_bits is None:
                return [f"{ind}{acc} = _rt.uwn({acc}, {expr})"]
            nb, lo, hi = t.number_of_bits, t.minimum, t.maximum
            if t.has_extension_marker:
                w = self.var("w")
                return [
                    f"{ind}{w} = {expr}",
                    f"{ind}if {lo} <= {w} <= {hi}:",
                    f"{ind}    {acc} = {acc} << {nb + 1} | {self._minus(w, lo)}",
                    f"{ind}else:",
                    f"{ind}    {acc} = _rt.uwn({acc} << 1 | 1, {w})",
                ]
            return [f"{ind}{acc} = {acc} << {nb} | {self._minus(expr, lo)}"] if nb else []
        if cls == "Boolean":
            return [f"{ind}{acc} = {acc} << 1 | (1 if {expr} else 0)"]
        if cls == "Null":
            return []
        if cls == "Enumerated":
            root = self.const(repr(dict(t.root_data_to_index)), "dict[str, int]", f"E_{node.name or hint}")
            nb = t.root_number_of_bits
            if t.additions_index_to_data is None:
                return [f"{ind}{acc} = {acc} << {nb} | {root}[{expr}]"]
            ext = self.const(repr(dict(t.additions_data_to_index)), "dict[str, int]", f"X_{node.name or hint}")
            w, i = self.var("w"), self.var("i")
            return [
                f"{ind}{w} = {expr}",
                f"{ind}{i} = {root}.get({w})",
                f"{ind}if {i} is not None:",
                f"{ind}    {acc} = {acc} << {nb + 1} | {i}",
                f"{ind}else:",
                f"{ind}    {acc} = _rt.nsnn({acc} << 1 | 1, {ext}[{w}])",
            ]
        if cls == "BitString":
            return self._enc_bits(t, expr, acc, ind)
        if cls == "OctetString":
            return self._enc_octets(t, expr, acc, ind)
        if cls == "IA5String":
            if not all(k == v for k, v in t.permitted_alphabet.encode_map.items()) or t.bits_per_character != 7:
                raise NotImplementedError(f"{hint}: IA5String with a permitted alphabet")
            if t.has_extension_marker or t.number_of_bits is None:
                raise NotImplementedError(f"{hint}: IA5String without a bounded root size")
            b = self.var("b")
            lines = [f"{ind}{b} = {expr}.encode('ascii')"]
            if t.minimum != t.maximum:
                lines.append(f"{ind}{acc} = {acc} << {t.number_of_bits} | {self._minus(f'len({b})', t.minimum)}")
            lines.append(f"{ind}{acc} = {acc} << 7 * len({b}) | _rt.ia5_pack({b})")
            return lines
        if cls == "UTF8String":
            return [f"{ind}{acc} = _rt.octets({acc}, {expr}.encode('utf-8'))"]
        if cls == "OpenType":
            return [f"{ind}{acc} = _rt.octets({acc}, {expr})"]
        raise NotImplementedError(f"{hint}: {cls} ({node.kind})")

    @staticmethod
    def _minus(expr: str, lo: int) -> str:
        if lo == 0:
            return expr
        return f"({expr} - {lo})" if lo > 0 else f"({expr} + {-lo})"

    def _enc_bits(self, t: AsnType, expr: str, acc: str, ind: str) -> list[str]:
        d, k = self.var("d"), self.var("k")
        lines = [f"{ind}{d}, {k} = {expr}"]
        body = f"int.from_bytes({d}, 'big') >> (8 * len({d}) - {k})"
        if t.number_of_bits is None:
            return lines + [f"{ind}{acc} = _rt.bits_unbound({acc}, {d}, {k})"]
        inner = ind
        if t.has_extension_marker:
            lines += [
                f"{ind}if not {t.minimum} <= {k} <= {t.maximum}:",
                f"{ind}    {acc} = _rt.bits_unbound({acc} << 1 | 1, {d}, {k})",
                f"{ind}else:",
                f"{ind}    {acc} <<= 1",
            ]
            inner = ind + "    "
        if t.has_named_bits and t.minimum != t.maximum:
            raise NotImplementedError("variable-size BIT STRING with named bits (asn1tools strips its zeros)")
        if t.minimum != t.maximum:
            lines.append(f"{inner}{acc} = {acc} << {t.number_of_bits} | {self._minus(k, t.minimum)}")
        lines.append(f"{inner}{acc} = {acc} << {k} | {body}")
        return lines

    def _enc_octets(self, t: AsnType, expr: str, acc: str, ind: str) -> list[str]:
        d = self.var("d")
        lines = [f"{ind}{d} = {expr}"]
        if t.number_of_bits is None:
            return lines + [f"{ind}{acc} = _rt.octets({acc}, {d})"]
        inner = ind
        if t.has_extension_marker:
            lines += [
                f"{ind}if not {t.minimum} <= len({d}) <= {t.maximum}:",
                f"{ind}    {acc} = _rt.octets({acc} << 1 | 1, {d})",
                f"{ind}else:",
                f"{ind}    {acc} <<= 1",
            ]
            inner = ind + "    "
        if t.minimum != t.maximum:
            lines.append(f"{inner}{acc} = {acc} << {t.number_of_bits} | {self._minus(f'len({d})', t.minimum)}")
        lines.append(f"{inner}{acc} = {acc} << (len({d}) << 3) | int.from_bytes({d}, 'big')")
        return lines

    # --- decoding ------------------------------------------------------------------------------
    def dec(self, t: AsnType, node: Node, target: str, ind: str, hint: str) -> list[str]:
        """Lines decoding a value of ``node`` at ``q`` into ``target`` (an assignable expression), and
        raising ``_rt.OutOfSchema`` for a value the schema's validation would refuse (see _invalid)."""
        t = _resolve(t)
        bad = self._invalid(t, node)
        if bad is None:
            return self._dec(t, node, target, ind, hint)
        c = self.var("c")
        return self._dec(t, node, c, ind, hint) + [
            f"{ind}if {bad.format(v=c)}:",
            f"{ind}    raise _rt.OutOfSchema",
            f"{ind}{target} = {c}",
        ]

    def _invalid(self, t: AsnType, node: Node) -> str | None:
        """A condition on ``{v}`` (the decoded value) true when ``rsu.codec.values.validate`` would refuse
        it, or None when the PER form admits only valid values (lists and SEQUENCEs check their own)."""
        cls = type(t).__name__
        if node.kind == "INTEGER":
            span = None
            if cls == "Integer" and t.number_of_bits is not None and not t.has_extension_marker:
                span = (t.minimum, t.minimum + (1 << t.number_of_bits) - 1 if t.number_of_bits else t.minimum)
            return _outside(node.value_range, "{v}", span)
        if node.kind == "ENUMERATED":
            names = set(t.root_index_to_data.values()) | set((t.additions_index_to_data or {}).values())
            if not names <= set(node.enum_root) | set(node.enum_ext):
                raise NotImplementedError(f"{node.name}: enumeration names differ from the schema's")
            return "{v} is None" if t.additions_index_to_data is not None else None
        if node.kind == "STRING":
            if node.string_type not in ("IA5String", "UTF8String"):  # IA5: 7-bit characters are ASCII
                raise NotImplementedError(f"{node.name}: {node.string_type}")
            return _outside(node.size, "len({v})", self._size_span(t))
        if node.kind == "OCTET STRING":
            return _outside(node.size, "len({v})", self._size_span(t))
        if node.kind == "BIT STRING":
            return _outside(node.size, "{v}[1]", self._size_span(t))
        return None

    @staticmethod
    def _size_span(t: AsnType) -> tuple[int, int] | None:
        """The sizes the PER form of a sized type can give (None: any)."""
        if getattr(t, "number_of_bits", None) is None or t.has_extension_marker:
            return None
        if t.minimum == t.maximum:
            return (t.minimum, t.minimum)
        return (t.minimum, t.minimum + (1 << t.number_of_bits) - 1)

    def _dec(self, t: AsnType, node: Node, target: str, ind: str, hint: str) -> list[str]:
        cls = type(t).__name__
        if self._inline(t, node):
            r = self.var("r")
            self.stack.append(id(node))
            body = (
                self._seq_dec(t, node.member_map, node.name or hint, r, ind)
                if node.kind == "SEQUENCE"
                else self._list_dec(t, node, node.name or hint, r, ind)
            )
            self.stack.pop()
            return body + [f"{ind}{target} = {r}"]
        if node.kind in CONSTRUCTED:
            return [f"{ind}{target}, q = d_{self.fn(t, node, hint)}(x, q)"]
        if cls == "Integer":
            if t.number_of_bits is None:
                return [f"{ind}{target}, q = _rt.read_uwn(x, q)"]
            nb, lo = t.number_of_bits, t.minimum
            plain = (
                [f"{ind}q -= {nb}", f"{ind}{target} = {self._plus(f'(x >> q) & {(1 << nb) - 1}', lo)}"]
                if nb
                else [f"{ind}{target} = {lo}"]
            )
            if not t.has_extension_marker:
                return plain
            return [
                f"{ind}q -= 1",
                f"{ind}if (x >> q) & 1:",
                f"{ind}    {target}, q = _rt.read_uwn(x, q)",
                f"{ind}else:",
            ] + ["    " + line for line in plain]
        if cls == "Boolean":
            return [f"{ind}q -= 1", f"{ind}{target} = (x >> q) & 1 == 1"]
        if cls == "Null":
            return [f"{ind}{target} = None"]
        if cls == "Enumerated":
            root = self.const(
                repr(tuple(t.root_index_to_data[i] for i in range(len(t.root_index_to_data)))),
                "tuple[str, ...]",
                f"D_{node.name or hint}",
            )
            nb = t.root_number_of_bits
            plain = (
                [f"{ind}q -= {nb}", f"{ind}{target} = {root}[(x >> q) & {(1 << nb) - 1}]"]
                if nb
                else [f"{ind}{target} = {root}[0]"]
            )
            if t.additions_index_to_data is None:
                return plain
            ext = self.const(repr(dict(t.additions_index_to_data)), "dict[int, str]", f"DX_{node.name or hint}")
            i = self.var("i")
            return [
                f"{ind}q -= 1",
                f"{ind}if (x >> q) & 1:",
                f"{ind}    {i}, q = _rt.read_nsnn(x, q)",
                f"{ind}    {target} = {ext}.get({i})",
                f"{ind}else:",
            ] + ["    " + line for line in plain]
        if cls == "BitString":
            return self._dec_bits(t, target, ind)
        if cls == "OctetString":
            return self._dec_octets(t, target, ind)
        if cls == "IA5String":
            k = self.var("k")
            lines = []
            if t.minimum != t.maximum:
                lines += [
                    f"{ind}q -= {t.number_of_bits}",
                    f"{ind}{k} = {self._plus(f'(x >> q) & {(1 << t.number_of_bits) - 1}', t.minimum)}",
                ]
            else:
                lines.append(f"{ind}{k} = {t.minimum}")
            lines += [f"{ind}q -= 7 * {k}", f"{ind}{target} = _rt.ia5((x >> q) & ((1 << (7 * {k})) - 1), {k})"]
            return lines
        if cls == "UTF8String":
            b = self.var("b")
            return [f"{ind}{b}, q = _rt.read_octets(x, q)", f"{ind}{target} = {b}.decode('utf-8')"]
        if cls == "OpenType":
            return [f"{ind}{target}, q = _rt.read_octets(x, q)"]
        raise NotImplementedError(f"{hint}: {cls} ({node.kind})")

    @staticmethod
    def _plus(expr: str, lo: int) -> str:
        if lo == 0:
            return expr
        return f"({expr}) + {lo}" if lo > 0 else f"({expr}) - {-lo}"

    def _dec_sized(self, t: AsnType, target: str, ind: str, unbound: str) -> tuple[list[str], str, str]:
        """Common head of a sized BIT/OCTET STRING: the extension bit (outside the root: ``unbound``
        reads the whole value) and the length inside the root. Returns (lines, indent, length var)."""
        k = self.var("k")
        lines, inner = [], ind
        if t.has_extension_marker:
            lines += [
                f"{ind}q -= 1",
                f"{ind}if (x >> q) & 1:",
                f"{ind}    {target}, q = _rt.{unbound}(x, q)",
                f"{ind}else:",
            ]
            inner = ind + "    "
        if t.minimum != t.maximum:
            lines += [
                f"{inner}q -= {t.number_of_bits}",
                f"{inner}{k} = {self._plus(f'(x >> q) & {(1 << t.number_of_bits) - 1}', t.minimum)}",
            ]
        else:
            lines.append(f"{inner}{k} = {t.minimum}")
        return lines, inner, k

    def _dec_bits(self, t: AsnType, target: str, ind: str) -> list[str]:
        if t.number_of_bits is None:
            return [f"{ind}{target}, q = _rt.read_bits_unbound(x, q)"]
        lines, inner, k = self._dec_sized(t, target, ind, "read_bits_unbound")
        if t.minimum != t.maximum:
            return lines + [
                f"{inner}q -= {k}",
                f"{inner}{target} = (_rt.bits_to_bytes((x >> q) & ((1 << {k}) - 1), {k}), {k})",
            ]
        n = t.minimum
        pad = -n % 8
        return lines[:-1] + [
            f"{inner}q -= {n}",
            f"{inner}{target} = ((((x >> q) & {(1 << n) - 1}) << {pad}).to_bytes({(n + pad) // 8}, 'big'), {n})",
        ]

    def _dec_octets(self, t: AsnType, target: str, ind: str) -> list[str]:
        if t.number_of_bits is None:
            return [f"{ind}{target}, q = _rt.read_octets(x, q)"]
        lines, inner, k = self._dec_sized(t, target, ind, "read_octets")
        return lines + [
            f"{inner}q -= {k} << 3",
            f"{inner}{target} = ((x >> q) & ((1 << ({k} << 3)) - 1)).to_bytes({k}, 'big')",
        ]

    # --- functions per constructed type ----------------------------------------------------------
    def functions(self, f: _Fn) -> list[str]:
        self.list_accs = set()
        k = f.node.kind
        if k == "SEQUENCE":
            return self._sequence(f)
        if k == "CHOICE":
            return self._choice(f)
        if k == "SEQUENCE OF":
            return self._sequence_of(f)
        return self._regext(f)

    def _sequence(self, f: _Fn) -> list[str]:
        t, name = f.t, f.name
        mm = f.node.member_map
        self.stack.append(id(f.node))
        enc = (
            [_ENC_DEF.format(name), "    a: int = 1"] + self._seq_enc(t, mm, name, "v", "a", "    ") + ["    return a"]
        )
        dec = [_DEC_DEF.format(name)] + self._seq_dec(t, mm, name, "r", "    ") + ["    return r, q"]
        self.stack.pop()
        return enc + [""] + dec

    def _seq_enc(self, t: AsnType, mm: dict[str, Member], name: str, v: str, a: str, ind: str) -> list[str]:
        """Encoding of a SEQUENCE value ``v`` (a variable) appended to ``a``."""
        if type(t).__name__ not in ("Sequence", "AdditionGroup"):
            raise NotImplementedError(f"{name}: {type(t).__name__} for a SEQUENCE")
        for m in t.root_members:
            if m.default is not None:
                raise NotImplementedError(f"{name}.{m.name}: DEFAULT")
        u = self.var("")
        additions = t.additions
        lines = []
        # presence of additions decides the extension bit
        add_names = []
        for add in additions or []:
            if type(add).__name__ == "AdditionGroup":
                add_names.append([m.name for m in add.root_members])
            else:
                add_names.append([add.name])
        ext = ""
        if add_names:
            lines.append(f"{ind}ext{u} = " + " or ".join(f"{n!r} in {v}" for names in add_names for n in names))
            ext = f"ext{u}"
        opt = [m for m in t.root_members if m.optional]
        head_bits = (1 if additions is not None else 0) + len(opt)
        # presence bits as constants chosen by a test (quicker than shifting booleans)
        parts = [f"({1 << len(opt)} if {ext} else 0)"] if ext else []
        for i, m in enumerate(opt):
            bit = 1 << (len(opt) - 1 - i)
            parts.append(f"({bit} if {m.name!r} in {v} else 0)" if bit > 1 else f"({m.name!r} in {v})")
        if head_bits:
            lines.append(f"{ind}{a} = {a} << {head_bits}" + "".join(f" | {p}" for p in parts))
        lines += self._seq_root(t.root_members, mm, name, v, a, ind)
        if not add_names:
            return lines
        sub, subs, present = f"s{u}", f"subs{u}", f"present{u}"
        lines += [f"{ind}if {ext}:", f"{ind}    {subs}, {present} = [], 0"]
        n = len(additions)
        for i, add in enumerate(additions):
            lines.append(f"{ind}    if " + " or ".join(f"{nm!r} in {v}" for nm in add_names[i]) + ":")
            if type(add).__name__ == "AdditionGroup":
                if add.additions is not None:
                    raise NotImplementedError(f"{name}: extensible addition group")
                if any(not m.optional for m in add.root_members) and i != n - 1:
                    # asn1tools stops at an absent group with a mandatory member and drops later additions
                    raise NotImplementedError(f"{name}: a group with mandatory members before other additions")
                gopt = [m for m in add.root_members if m.optional]
                bits = " | ".join(f"({m.name!r} in {v}) << {len(gopt) - 1 - j}" for j, m in enumerate(gopt))
                lines.append(f"{ind}        {sub} = 1 << {len(gopt)}" + (f" | {bits}" if bits else ""))
                lines += self._seq_root(add.root_members, mm, name, v, sub, ind + "        ")
            else:
                lines.append(f"{ind}        {sub} = 1")
                lines += self.enc(
                    add, mm[add.name].node, f"{v}[{add.name!r}]", sub, ind + "        ", f"{name}_{add.name}"
                )
            lines += [f"{ind}        {subs}.append({sub})", f"{ind}        {present} |= {1 << (n - 1 - i)}"]
        lines.append(f"{ind}    {a} = _rt.additions({a}, {n}, {present}, {subs})")
        return lines

    def _seq_dec(self, t: AsnType, mm: dict[str, Member], name: str, r: str, ind: str) -> list[str]:
        """Decoding of a SEQUENCE into the new dict ``r`` (a variable)."""
        u = self.var("")
        additions = t.additions
        opt = [m for m in t.root_members if m.optional]
        head_bits = (1 if additions is not None else 0) + len(opt)
        h = f"h{u}"
        lines = [f"{ind}{r}: dict[str, Any] = {{}}"]
        if head_bits:  # read next to the first members, so that merge_fixed_fields can join them
            lines += [f"{ind}q -= {head_bits}", f"{ind}{h} = (x >> q) & {(1 << head_bits) - 1}"]
        lines += self._seq_root_dec(t.root_members, opt, mm, name, h, r, ind)
        if additions is None:
            return lines
        lines.append(f"{ind}if {h} >> {len(opt)}:")
        if not additions:
            return lines + [f"{ind}    q = _rt.skip_additions(x, q)"]
        n, bm, i, length, q0, al, g = (f"{stem}{u}" for stem in ("n", "bm", "i", "length", "q0", "al", "g"))
        lines += [
            f"{ind}    {n}, q = _rt.read_nsl(x, q)",
            f"{ind}    q -= {n}",
            f"{ind}    {bm} = (x >> q) & ((1 << {n}) - 1)",
            f"{ind}    for {i} in range({n}):",
            f"{ind}        if not ({bm} >> ({n} - 1 - {i})) & 1:",
            f"{ind}            continue",
            f"{ind}        {length}, q = _rt.read_ld(x, q)",
            f"{ind}        {q0} = q",
        ]
        kw = "if"
        inner = ind + "            "
        for k, add in enumerate(additions):
            names = [m.name for m in add.root_members] if type(add).__name__ == "AdditionGroup" else [add.name]
            if any(mm[n].presence for n in names):
                raise NotImplementedError(f"{name}: WITH COMPONENTS presence on an extension addition")
            lines.append(f"{ind}        {kw} {i} == {k}:")
            kw = "elif"
            if type(add).__name__ == "AdditionGroup":
                gopt = [m for m in add.root_members if m.optional]
                if gopt:
                    lines += [f"{inner}q -= {len(gopt)}", f"{inner}{g} = (x >> q) & {(1 << len(gopt)) - 1}"]
                lines += self._seq_root_dec(add.root_members, gopt, mm, name, g, r, inner)
            else:
                lines += self.dec(add, mm[add.name].node, f"{r}[{add.name!r}]", inner, f"{name}_{add.name}")
        return lines + [
            f"{ind}        else:",
            f"{ind}            q = _rt.skip(q, {length} << 3)",
            f"{ind}        {al} = ({q0} - q) % 8",
            f"{ind}        if {al}:",
            f"{ind}            q = _rt.skip(q, 8 - {al})",
        ]

    def _seq_root(
        self, members: list[AsnType], mm: dict[str, Member], name: str, v: str, acc: str, ind: str
    ) -> list[str]:
        lines = []
        for m in members:
            body = self.enc(
                m,
                mm[m.name].node,
                f"{v}[{m.name!r}]",
                acc,
                ind + ("    " if m.optional else ""),
                f"{name}_{m.name}",
                member=True,
            )
            if m.optional:
                if body:
                    lines.append(f"{ind}if {m.name!r} in {v}:")
                    lines += body
            else:
                if not body:  # NULL: asn1tools still requires the member
                    lines.append(f"{ind}{v}[{m.name!r}]")
                lines += body
        return lines

    def _seq_root_dec(
        self, members: list[AsnType], opt: list[AsnType], mm: dict[str, Member], name: str, pvar: str, r: str, ind: str
    ) -> list[str]:
        lines = []
        for m in members:
            presence = mm[m.name].presence  # WITH COMPONENTS: validation refuses the other case
            if m.optional:
                bit = 1 << (len(opt) - 1 - opt.index(m))
                if presence == "ABSENT":
                    lines += [f"{ind}if {pvar} & {bit}:", f"{ind}    raise _rt.OutOfSchema"]
                    continue
                if presence == "PRESENT":
                    lines += [f"{ind}if not {pvar} & {bit}:", f"{ind}    raise _rt.OutOfSchema"]
                lines.append(f"{ind}if {pvar} & {bit}:")
                lines += self.dec(m, mm[m.name].node, f"{r}[{m.name!r}]", ind + "    ", f"{name}_{m.name}")
            elif presence == "ABSENT":
                raise NotImplementedError(f"{name}.{m.name}: a mandatory member that must be absent")
            else:
                lines += self.dec(m, mm[m.name].node, f"{r}[{m.name!r}]", ind, f"{name}_{m.name}")
        return lines

    def _choice(self, f: _Fn) -> list[str]:
        t, name, mm = f.t, f.name, f.node.member_map
        if type(t).__name__ != "Choice" or t.number_of_indefinite_bits is not None:
            raise NotImplementedError(f"{name}: CHOICE form")
        roots = [t.root_index_to_member[i] for i in range(len(t.root_index_to_member))]
        exts = [t.additions_index_to_member[i] for i in range(len(t.additions_index_to_member or {}))]
        has_ext = t.additions_index_to_member is not None
        nb = t.root_number_of_bits if len(roots) > 1 else 0
        head = (1 if has_ext else 0) + nb
        enc = [_ENC_DEF.format(name), "    a: int = 1", "    k, w = v"]
        kw = "if"
        for i, m in enumerate(roots):
            enc.append(f"    {kw} k == {m.name!r}:")
            kw = "elif"
            if head:
                enc.append(f"        a = a << {head} | {i}" if i else f"        a <<= {head}")
            enc += self.enc(m, mm[m.name].node, "w", "a", "        ", f"{name}_{m.name}") or ["        pass"]
        for i, m in enumerate(exts):
            enc.append(f"    {kw} k == {m.name!r}:")
            kw = "elif"
            enc.append("        s = 1")
            enc += self.enc(m, mm[m.name].node, "w", "s", "        ", f"{name}_{m.name}")
            enc.append(f"        a = _rt.choice_ext(a, {i}, s)")
        enc += ["    else:", "        raise KeyError(k)", "    return a"]
        # w takes each alternative's value in turn (of different types); r, an extension's (or none)
        dec = [_DEC_DEF.format(name), "    w: Any"] + (["    r: tuple[str, Any]"] if exts else [])
        if has_ext:
            dec += [
                "    q -= 1",
                "    if (x >> q) & 1:",
                "        i, q = _rt.read_nsnn(x, q)",
                "        length, q = _rt.read_ld(x, q)",
                "        q0 = q",
            ]
            kw = "if"
            for i, m in enumerate(exts):
                dec.append(f"        {kw} i == {i}:")
                kw = "elif"
                dec += self.dec(m, mm[m.name].node, "w", "            ", f"{name}_{m.name}")
                dec.append(f"            r = ({m.name!r}, w)")
            # an alternative this schema does not know: validation refuses it (asn1tools gives None)
            if exts:
                dec += [
                    "        else:",
                    "            raise _rt.OutOfSchema",
                    "        return r, _rt.skip(q0, length << 3)",
                ]
            else:
                dec.append("        raise _rt.OutOfSchema")
        if nb:
            dec += [f"    q -= {nb}", f"    i = (x >> q) & {(1 << nb) - 1}"]
        else:
            dec.append("    i = 0")
        kw = "if"
        for i, m in enumerate(roots):
            dec.append(f"    {kw} i == {i}:")
            kw = "elif"
            dec += self.dec(m, mm[m.name].node, "w", "        ", f"{name}_{m.name}")
            dec.append(f"        return ({m.name!r}, w), q")
        dec.append(f"    raise _rt.Malformed('{name}: choice index ' + str(i))")
        return enc + [""] + dec

    def _sequence_of(self, f: _Fn) -> list[str]:
        self.stack.append(id(f.node))
        enc = (
            [_ENC_DEF.format(f.name), "    a: int = 1"]
            + self._list_enc(f.t, f.node, f.name, "v", "a", "    ")
            + ["    return a"]
        )
        dec = [_DEC_DEF.format(f.name)] + self._list_dec(f.t, f.node, f.name, "r", "    ") + ["    return r, q"]
        self.stack.pop()
        return enc + [""] + dec

    def _list_enc(self, t: AsnType, node: Node, name: str, v: str, a: str, ind: str) -> list[str]:
        self.list_accs.add(a)
        if type(t).__name__ != "SequenceOf":
            raise NotImplementedError(f"{name}: {type(t).__name__} for a SEQUENCE OF")
        u = self.var("")
        k, w = f"k{u}", f"w{u}"
        lines = [f"{ind}{k} = len({v})"]
        nb, lo, hi = t.number_of_bits, t.minimum, t.maximum
        if nb is None:
            lines.append(f"{ind}{a} = _rt.ld({a}, {k})")
        else:
            plain = f"{a} = {a} << {nb} | {self._minus(k, lo)}" if lo != hi else ""
            if t.has_extension_marker:
                lines += [
                    f"{ind}if {lo} <= {k} <= {hi}:",
                    f"{ind}    {a} <<= 1",
                    *([f"{ind}    {plain}"] if plain else []),
                    f"{ind}else:",
                    f"{ind}    {a} = _rt.ld({a} << 1 | 1, {k})",
                ]
            elif plain:
                lines.append(f"{ind}{plain}")
        lines.append(f"{ind}for {w} in {v}:")
        return lines + (
            self.enc(t.element_type, _element(node, name), w, a, ind + "    ", f"{name}_item") or [f"{ind}    pass"]
        )

    def _list_dec(self, t: AsnType, node: Node, name: str, r: str, ind: str) -> list[str]:
        u = self.var("")
        k, w = f"k{u}", f"w{u}"
        nb, lo, hi = t.number_of_bits, t.minimum, t.maximum
        lines = []
        if nb is None:
            lines.append(f"{ind}{k}, q = _rt.read_ld(x, q)")
        else:
            inner = ind
            if t.has_extension_marker:
                lines += [
                    f"{ind}q -= 1",
                    f"{ind}if (x >> q) & 1:",
                    f"{ind}    {k}, q = _rt.read_ld(x, q)",
                    f"{ind}else:",
                ]
                inner = ind + "    "
            if lo != hi:
                lines += [f"{inner}q -= {nb}", f"{inner}{k} = {self._plus(f'(x >> q) & {(1 << nb) - 1}', lo)}"]
            else:
                lines.append(f"{inner}{k} = {lo}")
        lines += [f"{ind}{r}: list[Any] = []", f"{ind}for _ in range({k}):"]
        if _element(node, name).kind in CONSTRUCTED and not self.loops:
            # drop the bits already read: ``x >> q`` then makes an int of the bits read since, not of all
            # of them (in a long message the reads of later items cost much more than this); in the
            # outermost list of a function only (an inner one's items are short, and x is short already)
            lines.append(f"{ind}    x &= (1 << q) - 1")
        self.loops += 1
        body = self.dec(t.element_type, _element(node, name), w, ind + "    ", f"{name}_item")
        self.loops -= 1
        bad = _outside(node.size, k, self._size_span(t))
        if bad:  # the count, before the items
            at = lines.index(f"{ind}{r}: list[Any] = []")
            lines[at:at] = [f"{ind}if {bad}:", f"{ind}    raise _rt.OutOfSchema"]
        last = re.fullmatch(rf"{ind}    {w} = (r\d+)", body[-1])
        if last:  # an item decoded in place into a dict: append that
            return lines + body[:-1] + [f"{ind}    {r}.append({last.group(1)})"]
        return lines + body + [f"{ind}    {r}.append({w})"]

    def _regext(self, f: _Fn) -> list[str]:
        t, name, node = f.t, f.name, f.node
        members = {m.name: m for m in t.root_members}
        rid = members.get("regionId")
        if (
            type(t).__name__ != "Sequence"
            or set(members) != {"regionId", "regExtValue"}
            or t.additions is not None
            or type(_resolve(rid)).__name__ != "Integer"
            or type(members["regExtValue"]).__name__ != "OpenType"
        ):
            raise NotImplementedError(f"{name}: RegionalExtension form")
        typed = self.schema.regset_types(node.regset or "")
        rid_node = Node(kind="INTEGER")
        enc = [_ENC_DEF.format(name), "    a: int = 1"]
        enc += self.enc(rid, rid_node, "v['regionId']", "a", "    ", f"{name}_regionId")
        enc += [
            "    w = v['regExtValue']",
            "    if isinstance(w, (bytes, bytearray)):",
            "        return _rt.octets(a, w)",
            "    r = v['regionId']",
        ]
        dec = [_DEC_DEF.format(name), "    w: Any"]  # the open type's bits, then its value or its bytes
        dec += self.dec(rid, rid_node, "r", "    ", f"{name}_regionId")
        dec += ["    n, q = _rt.read_ld(x, q)", "    q -= n << 3", "    w = (x >> q) & ((1 << (n << 3)) - 1)"]
        kw = "if"
        for region, tnode in sorted(typed.items()):
            tt = self.spec.types[tnode.label].type  # a region's node is a named type: label is its name
            fname = self.fn(tt, tnode, tnode.label)
            enc += [f"    {kw} r == {region}:", f"        return _rt.open_type(a, e_{fname}(w))"]
            dec += [f"    {kw} r == {region}:", f"        w = d_{fname}(w, n << 3)[0]"]
            kw = "elif"
        enc.append("    raise KeyError(r)")
        dec += [
            "    else:" if typed else "    if True:",
            "        w = w.to_bytes(n, 'big')",
            "    return {'regionId': r, 'regExtValue': w}, q",
        ]
        return enc + [""] + dec


_APPEND = re.compile(r"^(\s*)(\w+) = \2 << (\d+) \| (.+)$")
_SKIP = re.compile(r"^(\s*)q -= (\d+)$")
_READ = re.compile(r"^(\s*)(\S.*?) = (.*\(x >> q\).*)$")
_Q = re.compile(r"\bq\b")


def merge_fixed_fields(lines: list[str]) -> list[str]:
    """Peephole: consecutive fixed-width appends become one, consecutive fixed-width reads one read.

    ``a = a << 4 | E1`` + ``a = a << 8 | E2`` -> ``a = a << 12 | (E1) << 8 | (E2)``; and
    ``q -= 4`` ``t1 = f((x >> q))`` ``q -= 8`` ``t2 = g((x >> q))`` -> one shift of the whole input
    into a short int ``t_`` that both fields are taken from (shifting the input is what costs).
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _APPEND.match(lines[i])
        if m:
            ind, acc, width, parts = m.group(1), m.group(2), [int(m.group(3))], [m.group(4)]
            j = i + 1
            while j < len(lines) and (n := _APPEND.match(lines[j])) and n.group(1) == ind and n.group(2) == acc:
                width.append(int(n.group(3)))
                parts.append(n.group(4))
                j += 1
            if j - i > 1:
                terms = [f"({p}) << {sum(width[k + 1 :])}" for k, p in enumerate(parts[:-1])] + [f"({parts[-1]})"]
                out.append(f"{ind}{acc} = {acc} << {sum(width)} | " + " | ".join(terms))
            else:
                out.append(lines[i])
            i = j
            continue
        reads: list[tuple[str, int, str, str]] = []  # (indent, width, target, expression)
        j = i
        while j + 1 < len(lines):
            a, b = _SKIP.match(lines[j]), _READ.match(lines[j + 1])
            if not (
                a
                and b
                and a.group(1) == b.group(1)
                and (not reads or reads[0][0] == a.group(1))
                and b.group(3).count("(x >> q)") == 1
                and not _Q.search(b.group(3).replace("(x >> q)", ""))
                and not _Q.search(b.group(2))
            ):
                break
            reads.append((a.group(1), int(a.group(2)), b.group(2), b.group(3)))
            j += 2
        if len(reads) > 1:
            ind = reads[0][0]
            total = sum(r[1] for r in reads)
            out += [f"{ind}q -= {total}", f"{ind}t_ = (x >> q) & {(1 << total) - 1}"]
            for k, (_, _, target, rhs) in enumerate(reads):
                rest = sum(r[1] for r in reads[k + 1 :])
                out.append(f"{ind}{target} = " + rhs.replace("(x >> q)", f"(t_ >> {rest})" if rest else "t_"))
            i = j
            continue
        out.append(lines[i])
        i += 1
    return out


def generate() -> str:
    compiled = compile_set("is", "uper")
    schema = Schema(compiled)
    spec = compiled.spec
    g = Generator(schema, spec)
    entry = []
    for kind in catalog.MESSAGES:
        node = schema.pdu(kind.pdu)
        fname = g.fn(spec.types[kind.pdu].type, node, kind.pdu)
        entry.append((kind.name, fname))
    bodies: list[str] = []
    done = 0
    while done < len(g.order):  # functions register more functions as they are written
        f = g.order[done]
        done += 1
        bodies.append("\n".join(merge_fixed_fields(g.functions(f))))
    out = [
        '"""UPER encoder and decoder of the six TS 103 301 PDUs, generated by ``python -m rsu.codec.gen``.',
        "",
        "Do not edit: change rsu/codec/gen/uper_gen.py (or the ASN.1 modules) and regenerate;",
        "tests/test_codec_generated.py fails when this file is not what the generator writes.",
        '"""',
        "# flake8: noqa",
        "# fmt: off",
        "",
        "from collections.abc import Callable",
        "from typing import Any",
        "",
        "from rsu.codec import uper_runtime as _rt",
        "",
        f"SOURCE_DIGEST = {source_digest(compiled.sources)!r}",
        f"ASN1TOOLS_VERSION = {asn1tools.__version__!r}",
        "",
        *g.consts,
        "",
    ]
    for body in bodies:
        out += ["", body, ""]
    for kind_name, fname in entry:
        out += [
            "",
            f"def encode_{kind_name}(v: Any) -> bytes:",
            f"    return _rt.to_bytes(e_{fname}(v))",
            "",
            f"def decode_{kind_name}(data: bytes) -> tuple[Any, int]:",
            '    """(value, number of bytes the encoding used)."""',
            "    t = len(data) << 3",
            f"    v, q = d_{fname}(int.from_bytes(data, 'big'), t)",
            "    return v, (t - q + 7) >> 3",
            "",
        ]
    out += [
        "",
        "ENCODERS: dict[str, Callable[[Any], bytes]] = {" + ", ".join(f"{k!r}: encode_{k}" for k, _ in entry) + "}",
        "DECODERS: dict[str, Callable[[bytes], tuple[Any, int]]] = {"
        + ", ".join(f"{k!r}: decode_{k}" for k, _ in entry)
        + "}",
        "",
    ]
    return "\n".join(out)
