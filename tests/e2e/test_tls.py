"""HTTPS with the official clients, and a certificate swap under load (issue: TLS with certificate reload).

A test CA and two server certificates (different keys) are made at test time with the openssl CLI. The
server gets --tls-cert/--tls-key on both listeners. Shown: curl, tritonclient (ssl=True) and the openai
client (an https base URL, a streamed chat completion) work against the test CA; a WebSocket works over
wss://; TLS below 1.2 and plain HTTP are refused; swapping the files (SIGHUP, then a plain file change)
while requests run on fresh and kept-alive connections fails none, and new connections see the new
certificate; files that do not parse or a key that does not match its certificate stop the server at
start with the reason, and at a reload leave the certificate in force.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import openai
import pytest
import tritonclient.http as httpclient
import websocket

from conftest import FerryServer, ferry_binary, free_port, make_repository

TINY = "tiny_llm"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=Ferry test CA", cwd=root)
    (root / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("a", "b"):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN=localhost {name}", cwd=root)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext", cwd=root)
    return root


class TlsServer(FerryServer):
    ca: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def connection(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context())

    def peer_fingerprint(self, port: int | None = None) -> str:
        with self.context().wrap_socket(__import__("socket").create_connection((self.host, port or self.port), 5),
                                        server_hostname=self.host) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def fingerprint(pem: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.read_text())).hexdigest()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    pki = make_pki(root / "pki")
    live = root / "live"
    live.mkdir()
    for ext in ("pem", "key"):
        (live / f"server.{ext}").write_bytes((pki / f"a.{ext}").read_bytes())
    s = TlsServer(repo=make_repository(root / "models"), log_path=root / "ferry.log", extra_args=[])
    s.ca, s.pki, s.live = pki / "ca.pem", pki, live
    s.admin_port = free_port()
    s.extra_args = ["--tls-cert", str(live / "server.pem"), "--tls-key", str(live / "server.key"),
                    "--admin-port", str(s.admin_port), "--data-dir", str(root / "data")]
    s.start()
    yield s
    if not s.stopped:
        assert s.stop() == 0, s.log_text()


def test_curl_and_plain_http_and_old_protocols(tls):
    out = subprocess.run(["curl", "-sS", "--cacert", str(tls.ca), f"https://127.0.0.1:{tls.port}/v2/health/ready"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and json.loads(out.stdout) == {"ready": True}, out
    # The admin listener speaks TLS too.
    out = subprocess.run(["curl", "-sS", "--cacert", str(tls.ca), f"https://localhost:{tls.admin_port}/v2/health/live"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and json.loads(out.stdout) == {"live": True}, out
    # No certificate check passes without the CA.
    out = subprocess.run(["curl", "-sS", f"https://127.0.0.1:{tls.port}/v2/health/ready"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    with pytest.raises((http.client.HTTPException, OSError)):
        conn = http.client.HTTPConnection(tls.host, tls.port, timeout=5)
        conn.request("GET", "/v2/health/ready")
        conn.getresponse().read()
    # The server refuses TLS 1.1 with a protocol-version alert; TLS 1.3 and ALPN http/1.1 are offered.
    def s_client(*args: str) -> str:
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls.port}", "-CAfile", str(tls.ca), *args],
                             input="", capture_output=True, text=True, timeout=30)
        return out.stdout + out.stderr
    assert "alert protocol version" in s_client("-tls1_1", "-cipher", "ALL:@SECLEVEL=0")
    modern = s_client("-alpn", "h2,http/1.1")
    assert "TLSv1.3" in modern and "ALPN protocol: http/1.1" in modern, modern


def test_tritonclient_with_ssl(tls):
    c = httpclient.InferenceServerClient(url=f"127.0.0.1:{tls.port}", ssl=True,
                                         ssl_options={"ca_certs": str(tls.ca)}, network_timeout=30.0)
    try:
        assert c.is_server_ready()
        x = np.arange(8, dtype=np.float32)
        inp = httpclient.InferInput("INPUT0", [1, 8], "FP32")
        inp.set_data_from_numpy(x.reshape(1, 8), binary_data=True)
        result = c.infer("ident_fp32", [inp])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x.reshape(1, 8))
    finally:
        c.close()


def test_sequential_requests_keep_one_tls_connection(tls):
    # Each request is watched for its client going away (a TLS read left pending, then cancelled):
    # the session must come out of that intact, request after request.
    conn = tls.connection(timeout=10)
    try:
        first = None
        for i in range(20):
            body = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 8],
                                           "data": [float(i)] * 8}]})
            conn.request("POST", "/v2/models/ident_fp32/infer", body=body)
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200 and json.loads(data)["outputs"][0]["data"] == [float(i)] * 8, data
            first = first or conn.sock
            assert conn.sock is first
    finally:
        conn.close()


def test_openai_client_over_https_streams(tls):
    with httpx.Client(verify=tls.context(), timeout=60) as http_client:
        client = openai.OpenAI(base_url=f"https://127.0.0.1:{tls.port}/v1", api_key="unused", max_retries=0,
                               http_client=http_client)
        assert TINY in [m.id for m in client.models.list().data]
        stream = client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=8, temperature=0, stream=True)
        text = "".join((chunk.choices[0].delta.content or "") for chunk in stream if chunk.choices)
        assert text


def test_websocket_over_wss(tls):
    ws = websocket.create_connection(f"wss://127.0.0.1:{tls.port}/v1/ws/generate", timeout=30,
                                     sslopt={"ca_certs": str(tls.ca)})
    try:
        ws.send(json.dumps({"type": "generate", "id": "a", "model": TINY, "prompt": "The", "max_tokens": 4,
                            "temperature": 0}))
        while True:
            m = json.loads(ws.recv())
            if m["type"] == "done":
                assert m["usage"]["completion_tokens"] == 4
                break
            assert m["type"] == "token", m
    finally:
        ws.close()


class Traffic(threading.Thread):
    """Readiness on fresh connections and on one kept-alive connection, until stopped."""

    def __init__(self, server: TlsServer):
        super().__init__(daemon=True)
        self.server, self.ok, self.failures, self.halt = server, 0, [], threading.Event()

    def run(self) -> None:
        kept = self.server.connection(10)
        while not self.halt.is_set():
            for conn in (None, kept):
                try:
                    if conn is None:
                        status, _, _ = self.server.request("GET", "/v2/health/ready", timeout=10)
                    else:
                        conn.request("GET", "/v2/health/ready")
                        r = conn.getresponse()
                        r.read()
                        status = r.status
                    if status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(status)
                except Exception as e:  # noqa: BLE001 - every failure counts
                    self.failures.append(repr(e))
        kept.close()


def swap(live: Path, pki: Path, name: str) -> None:
    """The certificate first, then its key, each replaced atomically (a reload in between fails and keeps
    the certificate in force)."""
    for ext in ("pem", "key"):
        tmp = live / f".server.{ext}.tmp"
        tmp.write_bytes((pki / f"{name}.{ext}").read_bytes())
        os.replace(tmp, live / f"server.{ext}")


def wait_for_fingerprint(server: TlsServer, want: str, timeout_s: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.peer_fingerprint() == want:
            return True
        time.sleep(0.1)
    return False


def test_a_certificate_swap_under_load_fails_nothing(tls):
    a, b = fingerprint(tls.pki / "a.pem"), fingerprint(tls.pki / "b.pem")
    assert tls.peer_fingerprint() == a
    traffic = Traffic(tls)
    traffic.start()
    try:
        time.sleep(0.5)
        swap(tls.live, tls.pki, "b")
        tls.process.send_signal(signal.SIGHUP)
        assert wait_for_fingerprint(tls, b), tls.log_text()
        assert tls.peer_fingerprint(tls.admin_port) == b
        time.sleep(0.5)
        swap(tls.live, tls.pki, "a")  # no signal: the file watch picks it up
        assert wait_for_fingerprint(tls, a), tls.log_text()
        time.sleep(0.5)
    finally:
        traffic.halt.set()
        traffic.join(timeout=30)
    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.ok > 50
    assert "TLS certificate reloaded" in tls.log_text()


def test_bad_files_at_a_reload_keep_the_certificate_in_force(tls):
    a = fingerprint(tls.pki / "a.pem")
    assert wait_for_fingerprint(tls, a)
    original = (tls.live / "server.key").read_bytes()
    try:
        (tls.live / "server.key").write_bytes((tls.pki / "b.key").read_bytes())  # not a's key
        tls.process.send_signal(signal.SIGHUP)
        time.sleep(3)
        assert "does not match the certificate" in tls.log_text()
        assert tls.peer_fingerprint() == a
        assert tls.request("GET", "/v2/health/ready")[0] == 200
    finally:
        (tls.live / "server.key").write_bytes(original)
    assert tls.alive()


@pytest.mark.parametrize("case", ["garbage-cert", "mismatched-key", "missing-key-flag"])
def test_bad_tls_files_stop_the_server_at_start(tmp_path, case):
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    (tmp_path / "models").mkdir()
    tls_args = {"garbage-cert": ["--tls-cert", str(tmp_path / "garbage.pem"), "--tls-key", str(pki / "a.key")],
                "mismatched-key": ["--tls-cert", str(pki / "a.pem"), "--tls-key", str(pki / "b.key")],
                "missing-key-flag": ["--tls-cert", str(pki / "a.pem")]}[case]
    out = subprocess.run([str(ferry_binary()), "serve", "--model-repository", str(tmp_path / "models"),
                          "--http-address", "127.0.0.1", "--http-port", str(free_port()), "--data-dir",
                          str(tmp_path / "data"), *tls_args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    said = out.stdout + out.stderr
    expected = {"garbage-cert": "cannot be loaded", "mismatched-key": "does not match the certificate",
                "missing-key-flag": "--tls-key"}[case]
    assert expected in said, said
