"""The codec's error types. Nothing else leaves the codec: callers catch :class:`CodecError`."""

from __future__ import annotations


class CodecError(Exception):
    """Base of every error the codec raises."""


class InvalidValueError(CodecError):
    """A value (from an application, a JSON file, the API) does not fit the schema.

    ``path`` names the field from the PDU root, e.g. ``spat.intersections[0].states[3].signalGroup``;
    ``reason`` says what was expected and what was found.
    """

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path or '(root)'}: {reason}")


class DecodeError(CodecError):
    """Bytes that are not a valid encoding: truncated, malformed, trailing data.

    ``where`` says how far decoding got (type path and/or bit offset), when known.
    """

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        super().__init__(f"{message}" + (f" (at {where})" if where else ""))


class UnknownMessageError(DecodeError):
    """A well-formed ItsPduHeader whose messageID or protocolVersion this build does not decode."""

    def __init__(self, message: str, message_id: int | None = None, protocol_version: int | None = None):
        self.message_id = message_id
        self.protocol_version = protocol_version
        super().__init__(message)
