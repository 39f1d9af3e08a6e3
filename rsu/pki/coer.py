"""COER codec of the TS 102 941 modules (``asn1/pki``), compiled together with ``asn1/security``.

Same codec object as :mod:`rsu.security.coer` (encode, decode, decode_prefix with the
byte span), over the joined module set. Errors are :class:`rsu.security.coer.CoerError`.
"""

from __future__ import annotations

from rsu.security.coer import Codec, CoerError

PKI = Codec("security+pki")

encode = PKI.encode
decode = PKI.decode
decode_prefix = PKI.decode_prefix

__all__ = ["PKI", "CoerError", "encode", "decode", "decode_prefix"]
