"""A small real NTRIP caster for the tests, run as a separate process (standard library only).

    python caster.py --mount RTCM3 --user rsu --password secret

Prints JSON lines on stdout: ``{"event": "listening", "port": N}``, ``{"event": "request", "lines": [...],
"answer": "..."}``, ``{"event": "upload", "line": "$GPGGA..."}`` (what the client sends up after its
request), ``{"event": "closed"}``. Takes commands on stdin, one per line, applied to the connected client:

    send HEX    send these bytes (NTRIP 2: as two HTTP chunks, split in the middle)
    drop        close the connection at once (mid-stream)
    quit        stop

Answers: NTRIP 2 requests (``Ntrip-Version: Ntrip/2.0``) get ``HTTP/1.1 200 OK`` with chunked
``gnss/data``, ``401`` for bad credentials, ``404`` for another mountpoint; NTRIP 1 requests get
``ICY 200 OK``, ``HTTP/1.0 401 Unauthorized`` or the source table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import threading


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Caster:
    def __init__(self, mount: str, user: str, password: str) -> None:
        self.mount = mount
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.client: tuple[asyncio.StreamWriter, bool] | None = None  # (writer, chunked)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        v2 = headers.get("ntrip-version", "").lower() == "ntrip/2.0"
        parts = lines[0].split()
        path = parts[1] if len(parts) > 1 else ""
        if path != f"/{self.mount}":
            answer = (
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                if v2
                else f"SOURCETABLE 200 OK\r\nContent-Type: text/plain\r\n\r\nSTR;{self.mount};;RTCM 3.3;\r\n"
                "ENDSOURCETABLE\r\n"
            )
        elif headers.get("authorization") != self.auth:
            answer = (
                'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="/"\r\nContent-Length: 0\r\n\r\n'
                if v2
                else "HTTP/1.0 401 Unauthorized\r\n\r\n"
            )
        else:
            answer = (
                "HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\nContent-Type: gnss/data\r\n"
                "Transfer-Encoding: chunked\r\nCache-Control: no-store\r\n\r\n"
                if v2
                else "ICY 200 OK\r\n"
            )
        emit(event="request", lines=lines, answer=answer.split("\r\n")[0])
        writer.write(answer.encode())
        await writer.drain()
        if not answer.startswith(("HTTP/1.1 200", "ICY 200")):
            writer.close()
            emit(event="closed")
            return
        self.client = (writer, v2)
        pending = b""
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                pending += data
                while b"\r\n" in pending:
                    line, pending = pending.split(b"\r\n", 1)
                    emit(event="upload", line=line.decode("latin-1"))
        except ConnectionError:
            pass
        if self.client and self.client[0] is writer:
            self.client = None
        writer.close()
        emit(event="closed")

    def command(self, line: str) -> None:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "quit":
            asyncio.get_running_loop().stop()
            return
        if self.client is None:
            emit(event="error", detail=f"no client for {cmd}")
            return
        writer, chunked = self.client
        if cmd == "send":
            data = bytes.fromhex(arg)
            if chunked:
                half = len(data) // 2
                for piece in (data[:half], data[half:]):
                    if piece:
                        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            else:
                writer.write(data)
            emit(event="sent", bytes=len(data))
        elif cmd == "drop":
            writer.transport.abort()
            self.client = None
            emit(event="dropped")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mount", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    args = ap.parse_args()
    caster = Caster(args.mount, args.user, args.password)
    server = await asyncio.start_server(caster.handle, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(caster.command, line)
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=read_stdin, daemon=True).start()
    emit(event="listening", port=server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RuntimeError:  # the loop stopped on "quit" / end of stdin
        pass
