"""Facilities layer: the TS 103 301 service entities (TLM, RLT, IVI, TLC, GPC) and the dissemination scheduler.

Sans-I/O: service entities take application requests, received PDUs and a clock,
and return PDUs to send with their dissemination parameters. The facade that ties
them to the persisted store-and-repeat table and the scheduler is
:class:`rsu.services.layer.ServiceLayer`; its knobs are in :mod:`rsu.services.defaults`.
"""

from rsu.services.errors import ServiceError
from rsu.services.layer import ServiceLayer, ServicesConfig
from rsu.services.model import Transmission

__all__ = ["ServiceError", "ServiceLayer", "ServicesConfig", "Transmission"]
