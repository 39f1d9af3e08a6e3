"""The middle layer: sans-I/O send and receive pipelines between the services and the transports.

Layer: a pipeline takes a scheduled transmission (send) or a received frame (receive) plus ``now`` and
returns typed outcomes (:mod:`rsu.pipeline.outcomes`); it does no I/O. The daemon (``rsu.ops``)
writes the outcomes' frames to sockets and counts each outcome in the metrics.
"""
