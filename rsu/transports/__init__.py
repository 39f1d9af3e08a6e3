"""Networking & transport layer: GeoNetworking + BTP over UDP, MQTT for indirect delivery.

Layer contract: takes secured 1609.2 data plus dissemination parameters and
gives GN packets / MQTT publications; received frames come back up as secured data.

Modules (sans-I/O cores first, then the asyncio adapters)::

    base        the Transport protocol, DisseminationParams, ReceivedFrame (the interface)
    gn          GN basic/common/extended headers, BTP-B, lifetime, areas, duplicate detection
    ethernet    Ethernet II framing (ethertype 0x8947)
    envelope    the unsecuredData inside an Ieee1609Dot2Data, without verifying
    gn_core     the GN end node: secured data -> Ethernet frame, frame -> ReceivedFrame | Drop
    pcap        pcap writer, pcap/pcapng reader
    quadkey     Bing quadkeys for MQTT topic levels
    mqtt_core   topics, payload envelope, expiry, stale-aware publish queue, reconnect backoff
    config      GnUdpConfig, MqttConfig (validate() names the field)
    drops       DropReason names, DropCounts
    gn_udp      GnUdpTransport (asyncio UDP multicast)
    mqtt        MqttTransport (aiomqtt, MQTT v5)
    dispatch    TransportSet: several transports at once

See docs/transports.md for the wire choices.
"""
