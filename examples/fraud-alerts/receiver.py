#!/usr/bin/env python3
"""The fraud-alerts example's webhook receiver: Ferry pushes each scored transaction here.

    receiver.py --secret-file F --threshold-file alert_threshold.json [--port 0] [--port-file P]
                [--log received.jsonl]

Listens on 127.0.0.1. For POST /webhooks/ferry it checks the Standard Webhooks headers Ferry sends
(`webhook-id`, `webhook-timestamp`, `webhook-signature` = "v1,<base64 HMAC-SHA256(key,
'{id}.{timestamp}.{body}')>", key = the base64 after "whsec_"; several space-separated signatures
allowed), refuses a bad or missing signature or a timestamp more than 5 minutes off with 401, answers
a webhook-id it has seen before with 200 and nothing else (Ferry delivers at least once), and for a
new one logs it (one JSON line: webhook id, job, transaction = the job's idempotency key, score,
arrival time) and prints one ALERT line when the fraud probability is at or above the threshold.
GET /stats answers {"unique", "duplicates", "refused", "alerts"}. Stops on SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/webhooks/ferry"
TOLERANCE_S = 300


def secret_key(secret: str) -> bytes:
    if not secret.startswith("whsec_"):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len("whsec_"):], validate=True)


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(key: bytes, headers, body: bytes, now: float | None = None) -> str | None:
    """None when the headers sign `body` with `key` and the timestamp is recent; else why not."""
    msg_id, stamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        return "missing webhook headers"
    if not stamp.isdigit() or abs(int(stamp) - (time.time() if now is None else now)) > TOLERANCE_S:
        return "timestamp outside the tolerance"
    expected = sign(key, msg_id, stamp, body)
    if not any(hmac.compare_digest(s, expected) for s in signatures.split()):
        return "bad signature"
    return None


def parse_event(body: bytes) -> dict:
    """The fields of a job event this receiver keeps: job id, transaction, type, score (None unless
    the job succeeded)."""
    doc = json.loads(body)
    data = doc.get("data", {})
    score = None
    if doc.get("type") == "job.succeeded":
        score = float(data["result"]["outputs"][0]["data"][0])
    return {"job": data.get("id"), "tx": data.get("idempotency_key"), "type": doc.get("type"), "score": score}


class AlertReceiver:
    """The HTTP server, in a thread of its own. `out` gets the ALERT lines; `log_path` the JSON lines."""

    def __init__(self, secret: str, threshold: float, port: int = 0, log_path: str | None = None, out=None):
        self.key, self.threshold = secret_key(secret), threshold
        self.out = out if out is not None else sys.stdout
        self._log = open(log_path, "a", buffering=1) if log_path else None
        self._lock = threading.Lock()
        self.events: dict[str, dict] = {}   # webhook-id -> what was logged
        self.duplicates = self.refused = self.alerts = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.receiver = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{PATH}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    def stats(self) -> dict:
        with self._lock:
            return {"unique": len(self.events), "duplicates": self.duplicates, "refused": self.refused,
                    "alerts": self.alerts}

    def handle(self, headers, body: bytes) -> int:
        """The status to answer one webhook with; records it."""
        why = verify(self.key, headers, body)
        if why is not None:
            with self._lock:
                self.refused += 1
            print(f"refused webhook {headers.get('webhook-id')}: {why}", file=self.out, flush=True)
            return 401
        received_at = time.time()
        msg_id = headers["webhook-id"]
        with self._lock:
            if msg_id in self.events:
                self.duplicates += 1
                return 200
            event = {"webhook_id": msg_id, **parse_event(body), "received_at": received_at}
            self.events[msg_id] = event
            alert = event["score"] is not None and event["score"] >= self.threshold
            self.alerts += alert
            if self._log:
                self._log.write(json.dumps(event) + "\n")
        if alert:
            print(f"ALERT {event['tx']} fraud probability {event['score']:.3f} (job {event['job']})",
                  file=self.out, flush=True)
        elif event["type"] != "job.succeeded":
            print(f"{event['type']}: {event['tx']} (job {event['job']}) was not scored", file=self.out, flush=True)
        return 200

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._log:
            self._log.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] != PATH:
            self._answer(404)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status = self.server.receiver.handle(headers, body)
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
            status = 400  # signed by Ferry, yet not a job event this receiver understands
        self._answer(status)

    def do_GET(self):  # noqa: N802
        if self.path.split("?")[0] != "/stats":
            self._answer(404)
            return
        self._answer(200, json.dumps(self.server.receiver.stats()).encode())

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):  # quiet: the ALERT lines are the output
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--threshold-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="written with the port once listening")
    ap.add_argument("--log")
    args = ap.parse_args()
    secret = open(args.secret_file).read().strip()
    threshold = float(json.load(open(args.threshold_file))["threshold"])
    receiver = AlertReceiver(secret, threshold, args.port, args.log)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{receiver.port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"receiver: {receiver.url}, alerting at fraud probability >= {threshold:.3f}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    print(f"receiver: {receiver.stats()}", flush=True)
    receiver.close()


if __name__ == "__main__":
    main()
