"""The one error type of the services layer: a reason code, the field path, and the reason in words.

Every refused request raises :class:`ServiceError` before anything is stored or sent. The API
maps ``code`` to an HTTP status (``rsu.api.app.STATUS``) and answers
``{"error": {"code", "path", "reason", "message"}}``.
"""

from __future__ import annotations

# code -> what it means (also the list the OpenAPI document and docs/services.md show)
CODES: dict[str, str] = {
    "bad_request": "the request is not a JSON object of the expected shape",
    "validation": "a field does not fit the schema or the service rules (path and reason say which)",
    "ssp_not_permitted": "the content needs a permission that the authorization tickets do not grant",
    "unknown_service": "no such service",
    "unknown_id": "no active message with this identifier",
    "unknown_request": "no pending SREM request with this key",
    "revision_mismatch": "the SPATEM intersection revision differs from the active MAPEM's",
    "signal_group_mismatch": "the SPATEM signal groups differ from those the active MAPEM defines",
    "already_active": "a message with this identifier is already active (update it instead)",
    "id_in_use": "the requested identifier is used by another active message",
    "id_exhausted": "no free identifier is left",
    "not_active": "the message is terminating or has ended; it cannot be changed",
    "capacity": "the store-and-repeat table is full",
    "store_failure": "the state store could not be written; nothing was applied",
}


class ServiceError(Exception):
    """A refused request. ``path`` names the request field (``payload.ivi.mandatory.validTo``)."""

    def __init__(self, code: str, path: str, reason: str):
        assert code in CODES, code
        self.code = code
        self.path = path
        self.reason = reason
        super().__init__(f"{code}: {path or '(request)'}: {reason}")

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "path": self.path, "reason": self.reason, "message": str(self)}


def prefixed(path: str, prefix: str) -> str:
    """Join a request prefix and a path inside it (``payload`` + ``ivi.x`` -> ``payload.ivi.x``)."""
    if not path:
        return prefix
    if not prefix:
        return path
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"
