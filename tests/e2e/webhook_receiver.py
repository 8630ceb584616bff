"""Test doubles for webhook delivery: a scripted HTTP receiver, a TCP canary, and Standard Webhooks checks.

WebhookReceiver records every request (arrival time, headers, body) and answers it by a script kept per
path and per webhook-id: the n-th request of one webhook-id on a path gets step n (the last step repeats).
Steps:
  "200", "410", "503", ...      answer with that status (empty body)
  "302 <location>"              a redirect to <location>
  "sleep <seconds>"             hold the request that long, then answer 200 (the client should have given up)
  "close"                       close the connection without answering (FIN: the client reads EOF)
  "reset"                       abort the connection without answering (RST: the client gets ECONNRESET)
A path without a script answers 404.

Canary is a bare TCP listener that only records who connected: a forbidden address must stay at zero.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def make_secret(n_bytes: int = 32) -> str:
    return "whsec_" + base64.b64encode(os.urandom(n_bytes)).decode()


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The signature Standard Webhooks asks for: v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_ok(secret: str, headers: dict, body: bytes) -> bool:
    """True when one of the space-separated v1 signatures of the header matches (the standard allows
    several, for key rotation)."""
    expected = sign(secret, headers.get("webhook-id", ""), headers.get("webhook-timestamp", ""), body)
    return any(hmac.compare_digest(candidate, expected)
               for candidate in headers.get("webhook-signature", "").split())


@dataclass
class Received:
    seq: int                 # order of arrival over the whole receiver
    index: int               # 1-based: the how-manieth request of this webhook-id on this path
    method: str
    path: str
    headers: dict            # lower-cased names
    body: bytes
    wall: float              # time.time() when the whole request had been read
    mono: float              # time.monotonic(), same moment (for gaps)
    step: str                # the scripted behaviour applied
    answered: int | None = None       # the status written, None for close/reset
    write_failed: bool = False        # the answer could not be written (the client had gone)

    def __repr__(self) -> str:  # short: assertion messages print lists of these
        return (f"Received(#{self.seq} {self.path} {self.webhook_id} try {self.index}: {self.step} -> "
                f"{self.answered}, {len(self.body)} bytes)")

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def ok(self) -> bool:
        """Answered 2xx on time (a late answer after "sleep" does not count)."""
        return self.answered is not None and 200 <= self.answered < 300 and not self.step.startswith("sleep")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.server.receiver._handle(self)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, *args):  # quiet: the records are the log
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1"):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._scripts: dict[str, list[str]] = {}
        self._counts: dict[tuple[str, str | None], int] = {}
        self.received: list[Received] = []
        self._httpd = _Server((host, 0), _Handler)
        self._httpd.receiver = self
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def script(self, path: str, steps: list[str]) -> str:
        """Sets the script of `path`; returns its URL."""
        with self._lock:
            self._scripts[path] = list(steps)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def requests(self, path: str | None = None, webhook_id: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received
                    if (path is None or r.path == path) and (webhook_id is None or r.webhook_id == webhook_id)]

    def wait_for(self, predicate, timeout: float) -> bool:
        """Waits until predicate(self.received) is true; returns whether it became true in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --------------------------------------------------------------------------------------- serving

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = _read_body(h)
        path = urlsplit(h.path).path
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._cond:
            key = (path, headers.get("webhook-id"))
            index = self._counts[key] = self._counts.get(key, 0) + 1
            steps = self._scripts.get(path)
            step = steps[min(index, len(steps)) - 1] if steps else "404"
            record = Received(seq=len(self.received) + 1, index=index, method=h.command, path=path,
                              headers=headers, body=body, wall=time.time(), mono=time.monotonic(), step=step)
            self.received.append(record)
            self._cond.notify_all()
        kind, _, arg = step.partition(" ")
        if kind == "close":
            h.close_connection = True  # nothing written; the handler closes the socket: FIN
            return
        if kind == "reset":
            h.close_connection = True
            # SO_LINGER 0 turns the close into an RST. Close here, before socketserver's shutdown(SHUT_WR)
            # would send a FIN first.
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.rfile.close()
            h.connection.close()
            return
        status, extra = 200, {}
        if kind == "sleep":
            time.sleep(float(arg))
        elif kind.isdigit():
            status = int(kind)
            if arg:
                extra["Location"] = arg
        else:
            raise ValueError(f"unknown step {step!r}")
        try:
            h.send_response(status)
            for name, value in extra.items():
                h.send_header(name, value)
            h.send_header("Content-Length", "0")
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.flush()
            record.answered = status
        except OSError:
            record.write_failed = True
            h.close_connection = True


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(h.rfile.read(size))
            h.rfile.readline()
    length = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(length) if length else b""


class Canary:
    """Accepts and records every TCP connection, reading nothing."""

    def __init__(self, host: str = "127.0.0.1"):
        self.connections: list[tuple[float, tuple]] = []
        self._sock = socket.socket()
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections.append((time.time(), peer))
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
