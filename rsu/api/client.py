"""A small synchronous client of the API (stdlib only, so the CLI starts fast)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

from rsu.api import DEFAULT_HOST, DEFAULT_PORT

DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def default_url() -> str:
    return os.environ.get("RSU_API_URL") or DEFAULT_URL


class ApiError(Exception):
    """The API refused a request: ``code``, ``path`` and ``reason`` as it answered them."""

    def __init__(self, status: int, code: str, path: str, reason: str):
        self.status, self.code, self.path, self.reason = status, code, path, reason
        super().__init__(f"{code}: {path or '(request)'}: {reason}")


class ApiUnreachable(Exception):
    pass


class Client:
    def __init__(self, base_url: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = (base_url or default_url()).rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        url = self.base_url + path + (("?" + urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)["error"]
                raise ApiError(e.code, err.get("code", "error"), err.get("path", ""), err.get("reason", "")) from None
            except (ValueError, KeyError, TypeError):
                raise ApiError(e.code, "http_error", "", f"HTTP {e.code}: {raw[:200]!r}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise ApiUnreachable(f"cannot reach the rsu API at {self.base_url} (is the daemon running?): {reason}"
                                 ) from None

    @staticmethod
    def _entry(service: str, ident: str) -> str:
        return f"/v1/{quote(service, safe='')}/messages/{quote(ident, safe='')}"

    def trigger(self, service: str, body: dict) -> dict:
        return self.request("POST", f"/v1/{quote(service, safe='')}/messages", body)

    def update(self, service: str, ident: str, body: dict) -> dict:
        return self.request("PUT", self._entry(service, ident), body)

    def terminate(self, service: str, ident: str, body: dict | None = None) -> dict:
        return self.request("POST", self._entry(service, ident) + "/terminate", body or {})

    def get(self, service: str, ident: str) -> dict:
        return self.request("GET", self._entry(service, ident))

    def list(self, service: str | None = None) -> list[dict]:
        if service:
            return self.request("GET", f"/v1/{quote(service, safe='')}/messages")["messages"]
        return self.request("GET", "/v1/messages")["messages"]
