"""The one error shape of the PKI client: a short stable ``reason`` (for logs, metrics, tests) and a ``detail``."""

from __future__ import annotations


class PkiError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
