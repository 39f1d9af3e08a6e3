"""Codec layer: facilities PDUs (ItsPduHeader + message body) <-> UPER bytes, and their JER JSON form.

Layer contract: takes and gives *facilities PDUs* (unsigned, no security header,
no GeoNetworking/BTP). Everything goes through :class:`rsu.codec.FacilitiesCodec`.
"""
