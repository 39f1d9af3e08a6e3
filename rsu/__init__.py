"""rsu: a C-ITS roadside-unit facilities-layer daemon (ETSI TS 103 301 infrastructure services)."""

__version__ = "0.1.0"
