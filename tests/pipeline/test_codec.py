"""The codec port's daemon implementation: the ASN.1 specification is read at first use (restored messages go
on the air before it), every encode's duration is reported, and each method reaches the real codec."""

from __future__ import annotations

from services.support import example

from rsu import catalog
from rsu.pipeline.codec import LazyCodec


def test_the_codec_loads_at_first_use_and_reports_each_encode(codec):
    loads: list[int] = []
    timed: list[tuple] = []
    ticks = iter([10.0, 10.25, 20.0, 20.5])

    def load():
        loads.append(1)
        return codec

    lazy = LazyCodec(load, lambda kind, seconds: timed.append((kind, seconds)), timer=lambda: next(ticks))
    assert loads == []  # nothing read yet
    _, value = lazy.from_jer(example("spatem"), catalog.SPATEM)
    assert loads == [1]
    pdu = lazy.encode(value, catalog.SPATEM)
    lazy.encode(value)  # the kind named by the header
    assert timed == [(catalog.SPATEM, 0.25), (None, 0.5)]
    assert lazy.decode(pdu).value == value and lazy.decode(pdu).kind is catalog.SPATEM
    assert lazy.to_jer(catalog.SPATEM, value) == codec.to_jer(catalog.SPATEM, value)
    assert lazy.schema is codec.schema
    lazy.warm()
    assert loads == [1]  # loaded once


def test_warm_reads_the_specification_now(codec):
    loads: list[int] = []
    lazy = LazyCodec(lambda: loads.append(1) or codec)
    lazy.warm()
    assert loads == [1]
