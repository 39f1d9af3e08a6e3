"""NTRIP protocol pieces (sans-I/O): requests v1/v2, response parsing (ICY, HTTP, chunked, refusals), GGA, backoff."""

from __future__ import annotations

import base64
import random

import pytest

from rsu.integrations.config import ConfigError, NtripConfig
from rsu.integrations.ntrip import Backoff, NtripError, ResponseParser, build_request, gga_sentence, nmea_checksum

GGA = gga_sentence(44.837592, -0.579431, 40.0, 1747210343.45)


def test_v1_request():
    req = build_request(
        host="caster.example",
        port=2101,
        mountpoint="BORDEAUX",
        version=1,
        username="rsu",
        password="s3:cret",
        gga=GGA,
        user_agent="NTRIP rsu/0.1",
    )
    head, _, body = req.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"GET /BORDEAUX HTTP/1.0",
        b"User-Agent: NTRIP rsu/0.1",
        b"Authorization: Basic " + base64.b64encode(b"rsu:s3:cret"),
    ]
    assert body == GGA.encode()  # NTRIP 1: the first GGA right after the request


def test_v2_request():
    req = build_request(host="10.1.2.3", port=2102, mountpoint="VRS", version=2, username="rsu", password="pw", gga=GGA)
    assert req.endswith(b"\r\n\r\n")
    lines = req.decode().split("\r\n")[:-2]
    assert lines[0] == "GET /VRS HTTP/1.1"
    assert set(lines[1:]) == {
        "Host: 10.1.2.3:2102",
        "Ntrip-Version: Ntrip/2.0",
        "User-Agent: NTRIP rsu",
        "Authorization: Basic " + base64.b64encode(b"rsu:pw").decode(),
        "Ntrip-GGA: " + GGA.strip(),
        "Connection: close",
    }
    anonymous = build_request(host="h", port=1, mountpoint="M", version=2).decode()
    assert "Authorization" not in anonymous and "Ntrip-GGA" not in anonymous


def test_gga_sentence():
    assert GGA.endswith("\r\n")
    body, _, cs = GGA.strip()[1:].partition("*")
    assert int(cs, 16) == nmea_checksum(body)
    f = body.split(",")
    assert f[:7] == ["GPGGA", "081223.45", "4450.25552", "N", "00034.76586", "W", "1"]
    assert f[9] == "40.0"
    south = gga_sentence(-33.9, 151.2, 5.0, 0.0)
    assert ",3354.00000,S,15112.00000,E," in south
    assert ",0000.00000,N,00000.00000,E," in gga_sentence(0.0, 0.0, 0.0, 0.0)
    assert ",1000.00000,N," in gga_sentence(9.9999999999, 0.0, 0.0, 0.0)  # never 60.00000 minutes


def feed_bytewise(parser: ResponseParser, data: bytes) -> bytes:
    out = b""
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    return out


def test_icy_response_then_the_stream():
    p = ResponseParser()
    assert feed_bytewise(p, b"ICY 200 OK\r\n\xd3\x00\x01\x02") == b"\xd3\x00\x01\x02"
    assert p.status == "ok" and p.status_line == "ICY 200 OK"


def test_http_chunked_response_split_anywhere():
    body = b"\xd3\x00\x13" + bytes(range(40))
    chunked = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in (body[:7], body[7:30], body[30:]))
    raw = (
        b"HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\nContent-Type: gnss/data\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    )
    for cut in range(len(raw)):
        p = ResponseParser()
        out = p.feed(raw[:cut]) + p.feed(raw[cut:])
        assert out == body and p.ended
    p = ResponseParser()
    assert feed_bytewise(p, raw) == body and p.headers["ntrip-version"] == "Ntrip/2.0"
    plain = ResponseParser()
    assert plain.feed(b"HTTP/1.1 200 OK\r\nContent-Type: gnss/data\r\n\r\n\xd3\x00") == b"\xd3\x00"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n\r\n", "ntrip-unauthorized"),
        (b"HTTP/1.0 401 Unauthorized\r\n\r\n", "ntrip-unauthorized"),
        (b"HTTP/1.1 404 Not Found\r\n\r\n", "ntrip-no-mountpoint"),
        (b"SOURCETABLE 200 OK\r\nContent-Type: text/plain\r\n", "ntrip-no-mountpoint"),
        (b"HTTP/1.1 200 OK\r\nContent-Type: gnss/sourcetable\r\n\r\nSTR;A;", "ntrip-no-mountpoint"),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", "ntrip-refused"),
        (b"ICY 401 Unauthorized\r\n", "ntrip-refused"),
        (b"\xd3\x00\x13\x3e", "ntrip-bad-response"),
        (b"HTTP/1.1 OK\r\n\r\n", "ntrip-bad-response"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "ntrip-bad-chunk"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", "ntrip-bad-chunk"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 20000, "ntrip-bad-response"),
    ],
)
def test_refusals_and_bad_answers(raw, reason):
    with pytest.raises(NtripError) as e:
        ResponseParser().feed(raw)
    assert e.value.reason == reason


def test_backoff_grows_to_the_cap_with_jitter_and_resets():
    b = Backoff(0.5, 8.0, jitter=0.1, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    for d, base in zip(delays, [0.5, 1, 2, 4, 8, 8, 8, 8]):
        assert base * 0.9 <= d <= min(8.0, base * 1.1)
    b.reset()
    assert 0.45 <= b.next_delay() <= 0.55


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"mountpoint": "M"}, "host: ''"),
        ({"host": "h", "mountpoint": "a b"}, "mountpoint: 'a b'"),
        ({"host": "h", "mountpoint": "M", "version": 3}, "version: 3"),
        ({"host": "h", "mountpoint": "M", "gga": True}, "latitude/longitude: the RSU position is required for GGA"),
        ({"host": "h", "mountpoint": "M", "latitude": 95, "longitude": 0}, "latitude: 95"),
        ({"host": "h", "mountpoint": "M", "password_file": "/etc/hostname"}, "password_file: given without username"),
        (
            {"host": "h", "mountpoint": "M", "username": "u", "password_file": "/nonexistent"},
            "password_file: /nonexistent",
        ),
        ({"host": "h", "mountpoint": "M", "max_rtcmem_bytes": 100}, "max_rtcmem_bytes: 100"),
        ({"host": "h", "mountpoint": "M", "backoff_initial_s": 9, "backoff_max_s": 5}, "backoff_initial_s: larger"),
        ({"host": "h", "mountpoint": "M", "user_agent": "curl"}, "user_agent: must start with 'NTRIP '"),
        ({"host": "h", "mountpoint": "M", "pasword_file": "x"}, "pasword_file: unknown option"),
    ],
)
def test_config_errors_name_the_field(cfg, message):
    with pytest.raises(ConfigError) as e:
        NtripConfig.from_dict(cfg, "integrations.ntrip.")
    assert str(e.value).startswith("integrations.ntrip.") and message in str(e.value)
