"""Helpers shared by the generated UPER codec (``rsu.codec.generated.uper``).

Bit model of the generated code:

* encoding accumulates into one Python int ``a`` that starts at 1 (a sentinel bit), so that the
  number of bits written is ``a.bit_length() - 1``; appending ``n`` bits of ``v`` is
  ``a = a << n | v``, exactly what asn1tools' ``Encoder.append_non_negative_binary_integer`` does;
* decoding reads from one int ``x`` (the whole input) with ``q`` = the number of bits not yet
  read: reading ``n`` bits is ``q -= n; v = (x >> q) & mask``. Reading past the end makes ``q``
  negative, and a negative shift raises ``ValueError``: running out of data is always an error.

Each helper reproduces one primitive of asn1tools' UPER codec (0.169), including its quirks, so
that the generated code gives the same bytes and the same values. What the generated code does
not handle (length determinants of 16K and more, which need fragmentation) raises
:class:`Unsupported`; the facilities codec then uses asn1tools for that message.
"""

from __future__ import annotations

import hashlib


class Unsupported(Exception):
    """A construct the generated codec leaves to asn1tools (e.g. a fragmented length)."""


class Malformed(Exception):
    """Bytes the generated decoder cannot read (the facilities codec reports asn1tools' reason)."""


class OutOfSchema(Exception):
    """A value the schema's validation refuses (outside a range or size that PER can still carry, an
    unknown extension value or alternative): the facilities codec decodes these bytes again with
    asn1tools and lets validation name the field, so that the error is the one it always was."""


def source_digest(sources: dict[str, str]) -> str:
    """SHA-256 over the ASN.1 module texts (the generated module records the one it was made from)."""
    h = hashlib.sha256()
    for name, text in sorted(sources.items()):
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


def to_bytes(a: int) -> bytes:
    """Sentinel accumulator -> bytes, the last byte padded with zero bits (as asn1tools)."""
    nbits = a.bit_length() - 1
    pad = -nbits % 8
    return ((a ^ (1 << nbits)) << pad).to_bytes((nbits + pad) >> 3, "big")


# --- encoding -----------------------------------------------------------------------------------


def ld(a: int, n: int) -> int:
    """Unconstrained length determinant (X.691 11.9, no fragmentation)."""
    if n < 128:
        return a << 8 | n
    if n < 16384:
        return a << 16 | 0x8000 | n
    raise Unsupported(f"length {n} needs fragmentation")


def open_type(a: int, sub: int) -> int:
    """Append the sentinel accumulator ``sub`` as an open type: padded to octets, length first."""
    nbits = sub.bit_length() - 1
    pad = -nbits % 8
    nbytes = (nbits + pad) >> 3
    return ld(a, nbytes) << (nbytes << 3) | (sub ^ (1 << nbits)) << pad


def octets(a: int, data: bytes | bytearray) -> int:
    """Length determinant and the octets (OCTET STRING without a size bound, open-type bytes)."""
    n = len(data)
    return ld(a, n) << (n << 3) | int.from_bytes(data, "big")


def uwn(a: int, value: int) -> int:
    """Unconstrained whole number (asn1tools' append_unconstrained_whole_number)."""
    number_of_bits = value.bit_length()
    if value < 0:
        number_of_bytes = (number_of_bits + 7) // 8
        value = (1 << (8 * number_of_bytes)) + value
        if (value & (1 << (8 * number_of_bytes - 1))) == 0:
            value |= 0xFF << (8 * number_of_bytes)
            number_of_bytes += 1
    elif value > 0:
        number_of_bytes = (number_of_bits + 7) // 8
        if number_of_bits == 8 * number_of_bytes:
            number_of_bytes += 1
    else:
        number_of_bytes = 1
    return ld(a, number_of_bytes) << (8 * number_of_bytes) | value


def nsnn(a: int, value: int) -> int:
    """Normally small non-negative whole number (extension indexes of CHOICE and ENUMERATED)."""
    if value < 64:
        return a << 7 | value
    length = (value.bit_length() + 7) // 8
    return ld(a << 1 | 1, length) << (8 * length) | value


def choice_ext(a: int, index: int, sub: int) -> int:
    """An extension alternative of a CHOICE: bit 1, its index, its value as an open type."""
    return open_type(nsnn(a << 1 | 1, index), sub)


def additions(a: int, count: int, present: int, subs: list[int]) -> int:
    """SEQUENCE extension additions: normally small length, presence bitmap, one open type each."""
    if count > 64:
        raise Unsupported("more than 64 extension additions")
    a = a << 7 | (count - 1)
    a = a << count | present
    for sub in subs:
        a = open_type(a, sub)
    return a


def bits_unbound(a: int, data: bytes, nbits: int) -> int:
    """A BIT STRING as length determinant + bits (no size bound, or outside an extensible root)."""
    a = ld(a, nbits)
    return a << nbits | int.from_bytes(data, "big") >> (8 * len(data) - nbits)


# --- decoding -----------------------------------------------------------------------------------


def read_ld(x: int, q: int) -> tuple[int, int]:
    q -= 8
    b = (x >> q) & 0xFF
    if not b & 0x80:
        return b, q
    if b & 0xC0 == 0x80:
        q -= 8
        return (b & 0x3F) << 8 | (x >> q) & 0xFF, q
    if b in (0xC1, 0xC2, 0xC3, 0xC4):
        raise Unsupported("fragmented length")
    raise Malformed(f"bad length determinant 0x{b:02x}")


def read_octets(x: int, q: int) -> tuple[bytes, int]:
    n, q = read_ld(x, q)
    q -= n << 3
    return ((x >> q) & ((1 << (n << 3)) - 1)).to_bytes(n, "big"), q


def read_uwn(x: int, q: int) -> tuple[int, int]:
    length, q = read_ld(x, q)
    nbits = 8 * length
    q -= nbits
    decoded = (x >> q) & ((1 << nbits) - 1)
    if decoded & (1 << (nbits - 1)):  # a zero length raises here, as in asn1tools
        decoded -= 1 << nbits
    return decoded, q


def read_nsnn(x: int, q: int) -> tuple[int, int]:
    q -= 1
    if not (x >> q) & 1:
        q -= 6
        return (x >> q) & 0x3F, q
    length, q = read_ld(x, q)
    q -= 8 * length
    return (x >> q) & ((1 << (8 * length)) - 1), q


def read_nsl(x: int, q: int) -> tuple[int, int]:
    """Normally small length as asn1tools reads it (its second form is 7 bits, the third unsupported)."""
    q -= 1
    if not (x >> q) & 1:
        q -= 6
        return ((x >> q) & 0x3F) + 1, q
    q -= 1
    if not (x >> q) & 1:
        q -= 7
        return (x >> q) & 0x7F, q
    raise Unsupported("normally small length > 64")


def read_bits_unbound(x: int, q: int) -> tuple[tuple[bytes, int], int]:
    n, q = read_ld(x, q)
    q -= n
    pad = -n % 8
    return ((((x >> q) & ((1 << n) - 1)) << pad).to_bytes((n + pad) >> 3, "big"), n), q


def skip_additions(x: int, q: int) -> int:
    """Skip the extension additions of a SEQUENCE that has none in this schema (all unknown)."""
    n, q = read_nsl(x, q)
    q -= n
    bm = (x >> q) & ((1 << n) - 1)
    for i in range(n):
        if (bm >> (n - 1 - i)) & 1:
            length, q = read_ld(x, q)
            q = skip(q, length << 3)
    return q


def skip(q: int, n: int) -> int:
    q -= n
    if q < 0:
        raise Malformed("out of data")
    return q


def bits_to_bytes(v: int, nbits: int) -> bytes:
    pad = -nbits % 8
    return (v << pad).to_bytes((nbits + pad) >> 3, "big")


# --- IA5String characters: n 7-bit groups <-> n octets, in log2(n) steps instead of a loop per character


def _ia5_steps(k: int) -> list[tuple[int, int]]:
    """(shift, mask) of each step spreading up to 2**k 7-bit groups to octets, highest shift first:
    group i (0 = least significant) moves left by i in total, by 2**b in the step of bit b of i;
    when that step comes, the steps of the higher bits have already moved it by ``i & done``."""
    steps = []
    for b in reversed(range(k)):
        s = 1 << b
        done = ((1 << k) - 1) & ~((s << 1) - 1)
        mask = 0
        for i in range(1 << k):
            if i & s:
                mask |= 0x7F << (7 * i + (i & done))
        steps.append((s, mask))
    return steps


# by (n - 1).bit_length() for n characters (the modules' longest IA5String has 255)
_SPREAD = [_ia5_steps(k) for k in range(9)]
_PACK = [[(s, m << s) for s, m in reversed(steps)] for steps in _SPREAD]  # the same steps undone


def ia5(v: int, n: int) -> str:
    """n characters of 7 bits (the first the most significant) -> str."""
    k = (n - 1).bit_length() if n else 0
    if k >= len(_SPREAD):
        return bytes([(v >> (7 * (n - 1 - i))) & 0x7F for i in range(n)]).decode("ascii")
    for s, m in _SPREAD[k]:
        t = v & m
        v = v ^ t | t << s
    return v.to_bytes(n, "big").decode("ascii")


def ia5_pack(b: bytes) -> int:
    """ASCII octets -> their characters as 7-bit groups (``7 * len(b)`` bits), the first the most significant."""
    n = len(b)
    k = (n - 1).bit_length() if n else 0
    if n <= 8 or k >= len(_PACK):  # a loop is quicker for a few characters
        v = 0
        for c in b:
            v = v << 7 | c
        return v
    v = int.from_bytes(b, "big")
    for s, m in _PACK[k]:
        t = v & m
        v = v ^ t | t >> s
    return v
