"""Fixtures of the forwarding tests: the real Mosquitto of the transport tests."""

from tests.transports.conftest import mosquitto_bin  # noqa: F401  (a fixture)
from tests.transports.conftest import signer  # noqa: F401,E402  (a fixture: the ETSI test AT)
