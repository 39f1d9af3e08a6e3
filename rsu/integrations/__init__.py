"""Field integrations: the layer that feeds the facilities services from the roadside equipment.

* traffic-controller feed (JSON over UDP/HTTP, NTCIP 1202 TSCBM over UDP) -> TLM (SPATEM), with the
  phase map, TimeMarks from the message's own timestamp and the feed watchdog
  (:mod:`rsu.integrations.controller`);
* MAPEM content from JER JSON files, reloaded on change or on SIGHUP -> RLT
  (:mod:`rsu.integrations.mapfiles`);
* NTRIP v1/v2 client, RTCM 3 framing with CRC-24Q -> GPC (RTCMEM) (:mod:`rsu.integrations.ntrip_io`).

Layer contract: the integrations never build PDUs themselves; they produce *requests* for the
services (the :class:`rsu.integrations.controller.Services` port: ``trigger``/``update``/``terminate``/
``get``; in the daemon a :class:`rsu.services.ports.CurrentServices`, which follows a reload),
which owns headers, timestamps, revisions, MAP consistency, repetition and the store. Protocol
cores are sans-I/O with an injected clock; the asyncio adapters only move bytes. The daemon
wires everything through :class:`rsu.integrations.runtime.Integrations`; ``docs/integrations.md``
documents the formats and the configuration.
"""

from rsu.integrations.config import ConfigError, ControllerFeedConfig, IntegrationsConfig, MapFilesConfig, NtripConfig

__all__ = ["ConfigError", "ControllerFeedConfig", "IntegrationsConfig", "MapFilesConfig", "NtripConfig"]
