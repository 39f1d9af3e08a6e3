"""Malformed input: decoding raises the codec's own error types and nothing else.

From valid encodings of generated values (``tests/strategies.py``): truncations, single bit
flips, random bodies behind a valid header, random bytes, appended garbage. A flip may well give
another valid message (most bits are data), so there decoding may succeed; everything that fails
must fail with a :class:`CodecError` whose message is one non-empty line. Targeted cases pin down
which error: empty and header-only input, unknown messageID, unsupported protocolVersion
(:class:`UnknownMessageError`), trailing bytes (:class:`DecodeError`).

The last section covers values PER can carry but the schema forbids, and unknown extensions.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import pdu_strategy, seeded

from rsu import catalog
from rsu.codec.errors import CodecError, DecodeError, UnknownMessageError

KINDS = pytest.mark.parametrize("kind", catalog.MESSAGES, ids=[k.name for k in catalog.MESSAGES])
OTHER_MESSAGE_IDS = [0, 1, 2, 3, 7, 8, 11, 12, 14, 255]  # CAM 2, DENM 1, ... and unassigned ones


_settings = seeded  # the same examples on every run (CI), no example database


def _check_message(e: CodecError) -> None:
    text = str(e)
    assert text.strip(), f"{type(e).__name__} with an empty message"
    assert "\n" not in text and "\r" not in text, f"multi-line message: {text!r}"


def _decode_or_codec_error(codec, data: bytes):
    """Decode; a failure must be a CodecError with a one-line message. Returns the PDU or the error."""
    try:
        return codec.decode(data)
    except CodecError as e:
        _check_message(e)
        return e
    # anything else propagates and fails the test


def _header(kind, protocol_version: int | None = None, message_id: int | None = None) -> bytes:
    pv = kind.protocol_version if protocol_version is None else protocol_version
    mid = kind.message_id if message_id is None else message_id
    return bytes([pv, mid]) + (4711).to_bytes(4, "big")


def _cut_points(n: int) -> list[int]:
    """Every truncation of a short encoding; of a long one, the first 48 and 48 spread over the rest."""
    if n <= 96:
        return list(range(n))
    step = (n - 48) / 48
    return list(range(48)) + sorted({48 + int(i * step) for i in range(48)} | {n - 1})


# --- properties over generated encodings ---------------------------------------------------


@KINDS
@_settings(40)
@given(data=st.data())
def test_truncations_raise_decode_error(codec, kind, data):
    encoded = codec.encode(data.draw(pdu_strategy(codec, kind), label="value"))
    for n in _cut_points(len(encoded)):
        # the decoder reads the same bits as for the whole encoding until it runs out: always an error
        with pytest.raises(DecodeError) as info:
            codec.decode(encoded[:n])
        _check_message(info.value)


@KINDS
@_settings(60)
@given(data=st.data())
def test_bit_flips_decode_or_raise_codec_error(codec, kind, data):
    encoded = codec.encode(data.draw(pdu_strategy(codec, kind), label="value"))
    nbits = len(encoded) * 8
    positions = data.draw(
        st.lists(st.integers(0, nbits - 1), min_size=1, max_size=48, unique=True), label="flipped bits"
    )
    for bit in positions:
        flipped = bytearray(encoded)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        _decode_or_codec_error(codec, bytes(flipped))


@KINDS
@_settings(40)
@given(data=st.data())
def test_appended_bytes_raise_decode_error(codec, kind, data):
    encoded = codec.encode(data.draw(pdu_strategy(codec, kind), label="value"))
    garbage = data.draw(st.binary(min_size=1, max_size=16), label="garbage")
    with pytest.raises(DecodeError) as info:
        codec.decode(encoded + garbage)
    assert not isinstance(info.value, UnknownMessageError)
    _check_message(info.value)


@KINDS
@_settings(100)
@given(body=st.binary(max_size=80))
def test_random_body_behind_valid_header(codec, kind, body):
    _decode_or_codec_error(codec, _header(kind) + body)


@_settings(200)
@given(data=st.binary(max_size=64))
def test_random_bytes(codec, data):
    _decode_or_codec_error(codec, data)


# --- targeted cases -------------------------------------------------------------------------


def test_empty_input(codec):
    with pytest.raises(DecodeError) as info:
        codec.decode(b"")
    assert not isinstance(info.value, UnknownMessageError)
    _check_message(info.value)


@pytest.mark.parametrize("n", [1, 5])
def test_shorter_than_a_header(codec, n):
    with pytest.raises(DecodeError) as info:
        codec.decode(_header(catalog.SPATEM)[:n])
    assert not isinstance(info.value, UnknownMessageError)
    _check_message(info.value)


@KINDS
def test_header_only(codec, kind):
    """A valid ItsPduHeader with no body: a known message, truncated (not an unknown one)."""
    with pytest.raises(DecodeError) as info:
        codec.decode(_header(kind))
    assert not isinstance(info.value, UnknownMessageError)
    _check_message(info.value)


@pytest.mark.parametrize("message_id", OTHER_MESSAGE_IDS)
def test_unknown_message_id(codec, message_id):
    assert message_id not in catalog.BY_MESSAGE_ID
    with pytest.raises(UnknownMessageError) as info:
        codec.decode(_header(catalog.SPATEM, message_id=message_id) + b"\x00" * 16)
    assert info.value.message_id == message_id
    _check_message(info.value)


@KINDS
@pytest.mark.parametrize("offset", [-1, 1, 253])
def test_unsupported_protocol_version(codec, kind, offset):
    version = (kind.protocol_version + offset) % 256
    good = codec.encode(_minimal(codec, kind))
    with pytest.raises(UnknownMessageError) as info:
        codec.decode(bytes([version]) + good[1:])
    assert info.value.protocol_version == version
    assert info.value.message_id == kind.message_id
    _check_message(info.value)


@KINDS
def test_trailing_bytes(codec, kind):
    good = codec.encode(_minimal(codec, kind))
    assert codec.decode(good).kind is kind
    for tail in (b"\x00", b"\xff\xff", bytes(64)):
        with pytest.raises(DecodeError, match="trailing") as info:
            codec.decode(good + tail)
        assert not isinstance(info.value, UnknownMessageError)
        _check_message(info.value)


_MINIMAL = {
    "spatem": {
        "intersections": [
            {
                "id": {"id": 1},
                "revision": 0,
                "status": (b"\x00\x00", 16),
                "states": [{"signalGroup": 1, "state-time-speed": [{"eventState": "dark"}]}],
            }
        ]
    },
    "mapem": {"msgIssueRevision": 0},
    "ivim": {
        "mandatory": {
            "serviceProviderId": {"countryCode": (b"\xb2\x80", 10), "providerIdentifier": 1},
            "iviIdentificationNumber": 1,
            "iviStatus": 0,
        }
    },
    "srem": {"second": 0, "requestor": {"id": ("stationID", 1)}},
    "ssem": {
        "second": 0,
        "status": [
            {
                "sequenceNumber": 0,
                "id": {"id": 1},
                "sigStatus": [
                    {
                        "requester": {"id": ("stationID", 1), "request": 1, "sequenceNumber": 0},
                        "inboundOn": ("lane", 1),
                        "status": "granted",
                    }
                ],
            }
        ],
    },
    "rtcmem": {"msgCnt": 0, "rev": "rtcmRev3", "msgs": [b"\xd3\x00\x00"]},
}


def _minimal(codec, kind) -> dict:
    return {
        "header": {"protocolVersion": kind.protocol_version, "messageID": kind.message_id, "stationID": 4711},
        kind.body: _MINIMAL[kind.name],
    }


# --- values PER can carry but the schema forbids, and extensions this build does not know --------


def test_out_of_range_integer_is_a_decode_error(codec):
    """SPAT.timeStamp (MinuteOfTheYear 0..527040) travels in 20 bits: 1048575 must not reach an application."""
    value = _minimal(codec, catalog.SPATEM)
    value["spat"]["timeStamp"] = 0
    encoded = codec.encode(value)
    body = format(int.from_bytes(encoded[6:], "big"), f"0{(len(encoded) - 6) * 8}b")
    # SPAT: extension bit, presence bits (timeStamp, name, regional), then timeStamp in 20 bits
    assert body[:4] == "0100"
    bad = body[:4] + "1" * 20 + body[24:]
    data = encoded[:6] + int(bad, 2).to_bytes(len(encoded) - 6, "big")
    with pytest.raises(DecodeError) as err:
        codec.decode(data)
    assert err.value.where == "spat.timeStamp"
    assert "1048575 > 527040" in str(err.value)
    assert codec.decode(data, validate=False).value["spat"]["timeStamp"] == 1048575  # what PER carried


# Valid encodings (X.691 extensibility) with extension values this build does not know; pycrate
# decodes both ('_ext_7' alternative with its bytes, '_ext_5' identifier). asn1tools gives None
# for them, which no application could use or re-encode: they are decode errors that say so.
UNKNOWN_CHOICE_ALTERNATIVE = bytes.fromhex("020600000000800000000000043830008000000000")  # IviContainer #7
UNKNOWN_ENUM_VALUE = bytes.fromhex("010d00000000000850006980")  # RTCM-Revision extension #5


@pytest.mark.parametrize(
    "data, where, what",
    [
        (UNKNOWN_CHOICE_ALTERNATIVE, "ivi.optional[0]", "unknown IviContainer alternative"),
        (UNKNOWN_ENUM_VALUE, "rtcmc.rev", "unknown RTCM-Revision value"),
    ],
)
def test_unknown_extensions_are_named_decode_errors(codec, data, where, what):
    with pytest.raises(DecodeError) as err:
        codec.decode(data)
    assert err.value.where == where
    assert what in str(err.value) and "newer version" in str(err.value)
    assert "\n" not in str(err.value)
