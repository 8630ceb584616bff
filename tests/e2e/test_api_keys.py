"""API keys end to end: a server started with --require-api-keys and an admin key.

- without a key (or with a wrong or revoked one) every route but health, server metadata and /metrics
  answers 401 JSON with WWW-Authenticate; the admin key passes everywhere;
- keys are made, listed (never with their secret) and revoked through /v1/keys with the admin key;
  a made key survives a restart;
- a key limited to models reaches those and gets 403 for others and for routes that name no model;
- a rate-limited key gets 429 with Retry-After once over its burst;
- a key with a token rate is served one generation past its burst and then refused with Retry-After until
  the rate has paid the debt back;
- a keys file names a key by its SHA-256; a bad file stops the server from starting, with the reason;
- a WebSocket upgrade without a key is refused with 401.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import ADMIN_KEY, FerryServer, ferry_binary

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
BODY = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}).encode()


def identity(repo: Path, name: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.yaml").write_text(
        f"name: {name}\nbackend: identity\nmax_batch_size: 8\n"
        "inputs:\n  - {name: INPUT0, datatype: FP32, dims: [4]}\n"
        "outputs:\n  - {name: OUTPUT0, datatype: FP32, dims: [4]}\n")


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    repo = root / "models"
    identity(repo, "alpha")
    identity(repo, "beta")
    file_secret = "fk_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    (root / "keys.yaml").write_text(
        f"- {{name: from-file, sha256: {hashlib.sha256(file_secret.encode()).hexdigest()}, models: [beta]}}\n")
    s = FerryServer(repo=repo, log_path=root / "ferry.log",
                    extra_args=["--admin-key", ADMIN_KEY, "--require-api-keys", "--api-keys-file",
                                str(root / "keys.yaml"), "--data-dir", str(root / "data")])
    s.start_timeout_s = 30
    s.wait_for_every_model = False  # readiness of models needs a key; /v2/health/ready does not
    s.start()
    s.root, s.file_secret = root, file_secret
    yield s
    if not s.stopped:
        assert s.stop() == 0, s.log_text()


def make_key(server, **fields) -> dict:
    status, _, data = server.request("POST", "/v1/keys", json.dumps(fields).encode(), headers=ADMIN)
    assert status == 200, data
    return json.loads(data)


def infer(server, model: str, headers=None):
    return server.request("POST", f"/v2/models/{model}/infer", BODY, headers=headers)


def test_calls_without_a_key_are_refused_but_probes_are_not(keyed):
    for method, path in [("POST", "/v2/models/alpha/infer"), ("GET", "/v2/models/alpha"), ("GET", "/v1/models"),
                         ("GET", "/v1/jobs"), ("GET", "/v1/tables")]:
        status, h, data = keyed.request(method, path, BODY if method == "POST" else None)
        assert status == 401, (path, data)
        assert "API key" in json.loads(data)["error"] and h.get("www-authenticate") == "Bearer"
    assert keyed.request("GET", "/nowhere")[0] == 404  # a path no route takes says so, key or not
    status, _, _ = infer(keyed, "alpha", bearer("fk_not_a_key"))
    assert status == 401
    for path in ("/v2/health/ready", "/v2/health/live", "/v2", "/metrics"):
        assert keyed.get(path)[0] == 200, path
    assert infer(keyed, "alpha", ADMIN)[0] == 200  # the operator's key passes


def test_keys_are_made_listed_without_secrets_limited_and_revoked(keyed):
    key = make_key(keyed, name="alpha-only", models=["alpha"])
    secret = key["secret"]
    assert secret.startswith("fk_") and key["prefix"] == secret[:10]
    assert infer(keyed, "alpha", bearer(secret))[0] == 200
    status, _, data = infer(keyed, "beta", bearer(secret))
    assert status == 403 and "may not use model 'beta'" in json.loads(data)["error"]
    status, _, data = keyed.request("GET", "/v1/models", headers=bearer(secret))
    assert status == 403 and "names no model" in json.loads(data)["error"]
    listed = json.loads(keyed.get("/v1/keys", headers=ADMIN)[2])["data"]
    assert any(k["name"] == "alpha-only" for k in listed)
    assert all("secret" not in k for k in listed)
    assert keyed.get("/v1/keys", headers=bearer(secret))[0] in (401, 403)  # keys are the operator's
    status, _, data = keyed.request("DELETE", f"/v1/keys/{key['id']}", headers=ADMIN)
    assert status == 200, data
    assert infer(keyed, "alpha", bearer(secret))[0] == 401
    status, _, data = keyed.request("POST", "/v1/keys", json.dumps({"name": "alpha-only"}).encode(), headers=ADMIN)
    assert status == 409


def test_a_rate_limited_key_gets_429_with_retry_after(keyed):
    secret = make_key(keyed, name="slow", rate_per_s=0.5, burst=3)["secret"]
    statuses = [infer(keyed, "alpha", bearer(secret)) for _ in range(5)]
    assert [s[0] for s in statuses[:3]] == [200, 200, 200]
    status, h, data = statuses[3]
    assert status == 429 and "over its rate" in json.loads(data)["error"]
    assert 1 <= int(h["retry-after"]) <= 2


@pytest.mark.parametrize("body,why", [(b"[]", "JSON object"), (b'{"models": ["alpha"]}', "'name' is required"),
                                      (b'{"name": "x", "rate_per_s": -1}', "rate_per_s"),
                                      (b'{"name": "x", "tokens_per_s": "many"}', "tokens_per_s"),
                                      (b'{"name": "x", "tokens_per_s": 5, "token_burst": 0.5}', "token_burst"),
                                      (b'{"name": "x", "colour": 1}', "unknown key"),
                                      (b'{"name": "bad name"}', "key name")])
def test_bad_key_bodies_are_400(keyed, body, why):
    status, _, data = keyed.request("POST", "/v1/keys", body, headers=ADMIN)
    assert status == 400 and why in json.loads(data)["error"], data


def test_a_websocket_upgrade_needs_a_key_too(keyed):
    with socket.create_connection((keyed.host, keyed.port), timeout=5) as s:
        s.sendall(b"GET /v1/ws/generate HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = s.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 401"), head


def test_a_key_from_the_file_and_one_made_survive_a_restart(keyed):
    assert infer(keyed, "beta", bearer(keyed.file_secret))[0] == 200
    assert infer(keyed, "alpha", bearer(keyed.file_secret))[0] == 403
    made = make_key(keyed, name="lasting")["secret"]
    assert keyed.stop() == 0
    again = FerryServer(repo=keyed.repo, log_path=keyed.log_path, extra_args=keyed.extra_args)
    again.wait_for_every_model = False
    again.start()
    try:
        assert infer(again, "alpha", bearer(made))[0] == 200
        assert infer(again, "beta", bearer(keyed.file_secret))[0] == 200
    finally:
        assert again.stop() == 0, again.log_text()


def test_a_bad_keys_file_stops_the_server_at_start(tmp_path):
    repo = tmp_path / "models"
    identity(repo, "alpha")
    (tmp_path / "keys.yaml").write_text("- {name: x, sha256: short}\n")
    out = subprocess.run([str(ferry_binary()), "serve", "--model-repository", str(repo), "--http-port", "0",
                          "--data-dir", str(tmp_path / "data"), "--api-keys-file", str(tmp_path / "keys.yaml")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "sha256" in (out.stdout + out.stderr)
    out = subprocess.run([str(ferry_binary()), "serve", "--model-repository", str(repo), "--http-port", "0",
                          "--data-dir", str(tmp_path / "data2"), "--require-api-keys"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "refuse every call" in (out.stdout + out.stderr)


def test_a_token_rate_paces_a_keys_generations(tmp_path):
    import shutil
    import time

    from conftest import EXAMPLES
    shutil.copytree(EXAMPLES / "tiny_llm", tmp_path / "models" / "tiny_llm")
    s = FerryServer(repo=tmp_path / "models", log_path=tmp_path / "ferry.log",
                    extra_args=["--admin-key", ADMIN_KEY, "--require-api-keys", "--data-dir", str(tmp_path / "data")])
    s.start_timeout_s = 60
    s.wait_for_every_model = False
    s.start()
    try:
        key = make_key(s, name="wordy", tokens_per_s=4, token_burst=4)
        assert (key["tokens_per_s"], key["token_burst"]) == (4, 4)
        headers = {**bearer(key["secret"]), "Content-Type": "application/json"}
        body = json.dumps({"model": "tiny_llm", "prompt": "Once upon a time", "max_tokens": 12}).encode()
        status, _, data = s.request("POST", "/v1/completions", body, headers, timeout=60)
        assert status == 200, data
        used = json.loads(data)["usage"]["total_tokens"]
        assert used > 4  # past the burst: the key is in debt
        status, h, data = s.request("POST", "/v1/completions", body, headers, timeout=60)
        assert status == 429 and "tokens per second" in json.loads(data)["error"]["message"], data
        wait = int(h["retry-after"])
        assert 1 <= wait <= (used - 4) / 4 + 2, (wait, used)
        # Streams are paced the same way, and the operator's key is not.
        stream = json.dumps({"model": "tiny_llm", "prompt": "A", "max_tokens": 2, "stream": True}).encode()
        assert s.request("POST", "/v1/completions", stream, headers, timeout=60)[0] == 429
        assert s.request("POST", "/v1/completions", body, {**ADMIN, "Content-Type": "application/json"},
                         timeout=60)[0] == 200
        time.sleep(wait)
        status, _, data = s.request("POST", "/v1/completions", body, headers, timeout=60)
        assert status == 200, data  # the debt is paid back
    finally:
        assert s.stop() == 0, s.log_text()
