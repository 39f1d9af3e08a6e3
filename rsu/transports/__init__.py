"""Networking & transport layer: GeoNetworking + BTP over UDP, MQTT for indirect delivery.

Layer contract: takes secured 1609.2 data plus dissemination parameters and
gives GN packets / MQTT publications; received frames come back up as secured data.
"""
