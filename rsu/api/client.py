"""A small synchronous client of the API (stdlib only, so the CLI starts fast)."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
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


def _env_token() -> str | None:
    path = os.environ.get("RSU_API_TOKEN_FILE")
    if path:
        from rsu.secretfile import read_secret_file

        try:
            return read_secret_file(path, "RSU_API_TOKEN_FILE").strip() or None
        except ValueError as e:
            raise ApiUnreachable(str(e)) from None
    return os.environ.get("RSU_API_TOKEN") or None


class Client:
    """Credentials, when the API asks for them (docs/operations.md, "Remote access"): a bearer token
    (``token``, else the first line of ``$RSU_API_TOKEN_FILE``, else ``$RSU_API_TOKEN``) and/or a client
    certificate (``$RSU_API_CERT`` and ``$RSU_API_KEY``); an https URL's server is verified against
    ``$RSU_API_CACERT`` (else the system's roots)."""

    def __init__(self, base_url: str | None = None, timeout: float = 10.0, token: str | None = None) -> None:
        self.base_url = (base_url or default_url()).rstrip("/")
        self.timeout = timeout
        self.token = token
        self._context: ssl.SSLContext | None = None
        self._ready = False

    def _credentials(self) -> None:
        """Read the credentials of the environment once (a bad file: ApiUnreachable naming it)."""
        if self._ready:
            return
        self.token = self.token or _env_token()
        if self.base_url.startswith("https:"):
            from rsu.api.tls import TlsError, client_context

            env = os.environ.get
            try:
                self._context = client_context(
                    *(Path(v) if v else None for v in (env("RSU_API_CACERT"), env("RSU_API_CERT"), env("RSU_API_KEY")))
                )
            except TlsError as e:
                raise ApiUnreachable(str(e)) from None
        self._ready = True

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        self._credentials()
        url = self.base_url + path + (("?" + urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._context) as resp:
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
            raise ApiUnreachable(
                f"cannot reach the rsu API at {self.base_url} (is the daemon running?): {reason}"
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
