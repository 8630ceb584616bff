"""Slow clients for R10 (slowloris and slow bodies), shared by test_slow_clients.py and
bench/run_slow_clients_benchmark.py.

`SlowClients` holds `headers` connections that send a request line and then one header line every
`drip_s`, and `bodies` connections that send a whole header announcing a body and then one body byte every
`drip_s`, all from `source` (an address of 127.0.0.0/8). A connection the server closes is opened again,
so the pressure lasts as long as the run. For each connection it keeps how long the server let it live
and the status line it got, if any. `Canary` calls the server on fresh connections from another
address and keeps each latency and status.
"""
from __future__ import annotations

import errno
import http.client
import selectors
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class Ended:
    kind: str          # "header" or "body"
    lived_s: float     # from connect to the server's close
    status: int | None  # the status line's code, when the server answered before closing


@dataclass
class _Conn:
    kind: str
    sock: socket.socket
    opened: float
    next_drip: float
    answer: bytes = b""


class SlowClients(threading.Thread):
    def __init__(self, port: int, headers: int, bodies: int, drip_s: float = 1.0, source: str = "127.0.0.1",
                 host: str = "127.0.0.1", path: str = "/v2/models/identity/infer"):
        super().__init__(daemon=True)
        self.port, self.host, self.source, self.path = port, host, source, path
        self.wanted = {"header": headers, "body": bodies}
        self.drip_s = drip_s
        self.ended: list[Ended] = []
        self.connect_failures = 0
        self.peak_open = 0
        self._halt = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, _Conn] = {}

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def _open(self, kind: str) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((self.source, 0))
        s.setblocking(False)
        try:
            s.connect((self.host, self.port))
        except BlockingIOError:
            pass
        except OSError:
            self.connect_failures += 1
            s.close()
            return
        if kind == "header":
            first = f"GET /v2/health/live HTTP/1.1\r\nHost: {self.host}\r\n".encode()
        else:
            first = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 1000000\r\n\r\n").encode()
        now = time.monotonic()
        c = _Conn(kind, s, now, now + self.drip_s)
        self._conns[s.fileno()] = c
        self._sel.register(s, selectors.EVENT_READ, c)
        self._send(c, first)

    def _send(self, c: _Conn, data: bytes) -> None:
        try:
            c.sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass  # the connect is still in flight: the next drip tries again
        except OSError:
            self._close(c)

    def _close(self, c: _Conn) -> None:
        if self._conns.pop(c.sock.fileno(), None) is None:
            return
        self._sel.unregister(c.sock)
        status = None
        if c.answer.startswith(b"HTTP/1.1 "):
            try:
                status = int(c.answer[9:12])
            except ValueError:
                pass
        self.ended.append(Ended(c.kind, time.monotonic() - c.opened, status))
        c.sock.close()

    def run(self) -> None:
        while not self._halt.is_set():
            for kind, n in self.wanted.items():
                missing = n - sum(1 for c in self._conns.values() if c.kind == kind)
                for _ in range(min(missing, 200)):  # a burst at a time, so the accept queue keeps up
                    self._open(kind)
            self.peak_open = max(self.peak_open, len(self._conns))
            for key, _ in self._sel.select(timeout=0.05):
                c: _Conn = key.data
                try:
                    data = c.sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    c.answer += data[:64]
                    if len(c.answer) >= 12:  # answered: nothing more to learn
                        self._close(c)
                else:
                    self._close(c)
            now = time.monotonic()
            for c in list(self._conns.values()):
                if now >= c.next_drip:
                    c.next_drip = now + self.drip_s
                    self._send(c, b"X-Drip: 1\r\n" if c.kind == "header" else b" ")
        for c in list(self._conns.values()):
            c.sock.close()
        self._conns.clear()


class Canary(threading.Thread):
    """Every `every_s`, GET `path` on a fresh connection from `source`; keeps (latency ms, status or error)."""

    def __init__(self, port: int, source: str = "127.0.0.2", every_s: float = 0.05, path: str = "/v2/health/ready"):
        super().__init__(daemon=True)
        self.port, self.source, self.every_s, self.path = port, source, every_s, path
        self.samples: list[tuple[float, object]] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        while not self._halt.is_set():
            start = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5, source_address=(self.source, 0))
                conn.request("GET", self.path)
                r = conn.getresponse()
                r.read()
                conn.close()
                outcome = r.status
            except OSError as e:
                outcome = errno.errorcode.get(e.errno, type(e).__name__) if e.errno else type(e).__name__
            self.samples.append(((time.monotonic() - start) * 1000, outcome))
            self._halt.wait(max(0.0, self.every_s - (time.monotonic() - start)))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
