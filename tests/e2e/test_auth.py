"""Who may call what (R16), walked over the whole route table as the binary prints it (`ferry routes`):

- every route x every method, on a server with --require-api-keys, an admin key and a loopback admin
  listener: on inference routes, without a key, with a wrong key, with a key in the query string -> 401;
  on admin routes -> 403 whatever the key (the admin listener serves them alone); public routes pass;
  the admin key -> never 401/403 elsewhere; no answer carries CORS headers; a method the path does not
  take -> 405 with Allow; a path not in the table -> 404;
- the admin listener: its callers need no key, but a foreign Host (DNS rebinding) or Origin -> 403;
- the repository index is readable by any inference key, filtered to the key's models, and without keys
  by anyone, while load and unload stay admin-only;
- a server listening beyond loopback without keys warns loudly; an admin listener beyond loopback
  without an admin key does not start;
- CORS only when configured (--cors-allow-origin): a listed origin's preflight gets 204 with the path's
  methods, its answers Access-Control-Allow-Origin; any other origin's preflight 403 and its answers no
  CORS header; without the flag every preflight 403; a value that is not an origin stops the start.

A route added to the table is walked here without a change to this file; a route served without a row
in the table cannot exist (the router answers 404 before any handler), and a row without a decision
fails tests/unit/http/route_table_test.cc.
"""
from __future__ import annotations

import http.client
import json
import subprocess

import pytest

from conftest import ADMIN_KEY, FerryServer, ferry_binary, free_port, start_and_read_log, write_identity_model

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def routes() -> list[dict]:
    out = subprocess.run([str(ferry_binary()), "routes"], capture_output=True, text=True, timeout=30, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def concrete(pattern: str) -> str:
    """A path for a pattern; load/unload name a model that does not exist, so that walking them changes nothing."""
    model = "ghost" if pattern.startswith("/v2/repository/models/") else "alpha"
    return (pattern.replace("{model}", model).replace("{version}", "1").replace("{id}", "nope")
            .replace("{name}", "nope").replace("{key}", "nope"))


class AuthServer(FerryServer):
    admin_port: int = 0

    def call(self, method: str, path: str, headers: dict | None = None, admin: bool = False, body: bytes = b""):
        conn = http.client.HTTPConnection(self.host, self.admin_port if admin else self.port, timeout=10)
        try:
            conn.request(method, path, body=body if method in ("POST", "PUT", "PATCH") else None, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    repo = root / "models"
    for name in ("alpha", "beta"):
        write_identity_model(repo, name, [("FP32", [4])])
    s = AuthServer(repo=repo, log_path=root / "ferry.log", extra_args=[])
    s.admin_port = free_port()
    s.extra_args = ["--admin-key", ADMIN_KEY, "--require-api-keys", "--admin-port", str(s.admin_port),
                    "--data-dir", str(root / "data")]
    s.wait_for_every_model = False
    s.start()
    made = []
    for fields in ({"name": "everything"}, {"name": "only-alpha", "models": ["alpha"]}):
        status, _, data = s.call("POST", "/v1/keys", admin=True, body=json.dumps(fields).encode())
        assert status == 200, data
        made.append(json.loads(data)["secret"])
    s.inference_key, s.alpha_key = made
    yield s
    if not s.stopped:
        assert s.stop() == 0, s.log_text()


def error_of(data: bytes) -> str:
    body = json.loads(data)
    assert isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


def test_the_table_is_walked_whole(guarded):
    table = routes()
    assert len(table) > 50
    assert {r["access"] for r in table} == {"public", "inference", "admin"}
    # The decisions that matter most, pinned here as well as in the unit test.
    access = {(r["method"], r["path"]): r["access"] for r in table}
    for method, path in [("POST", "/v2/repository/models/{model}/load"), ("POST", "/v2/repository/models/{model}/unload"),
                         ("GET", "/v1/keys"), ("POST", "/v1/keys"), ("DELETE", "/v1/keys/{id}"),
                         ("GET", "/v1/usage/config"), ("PUT", "/v1/usage/config"), ("POST", "/v1/schedules"),
                         ("DELETE", "/v1/schedules/{name}"), ("PUT", "/v1/tables/{name}"), ("DELETE", "/v1/tables/{name}")]:
        assert access[(method, path)] == "admin", (method, path)
    assert {path for (_, path), a in access.items() if a == "public"} == {"/v2", "/v2/health/live", "/v2/health/ready",
                                                                         "/metrics"}
    for r in table:
        path, access = concrete(r["path"]), r["access"]
        where = f"{r['method']} {r['path']} ({access})"
        # No key, a wrong key, a key in the query string.
        for headers, query in (({}, ""), ({"Authorization": "Bearer fk_wrong"}, ""),
                               ({"Authorization": "Basic YWRtaW46YWRtaW4="}, ""),
                               ({}, f"?api_key={guarded.inference_key}")):
            status, h, data = guarded.call(r["method"], path + query, headers)
            if access == "public":
                assert status not in (401, 403), (where, headers, data)
            elif access == "admin":  # this server has an admin listener: admin routes are served there only
                assert status == 403 and "admin listener only" in error_of(data), (where, headers, status, data)
            else:
                assert status == 401, (where, headers, query, status, data)
                assert h.get("www-authenticate") == "Bearer", where
                message = error_of(data)
                if query:
                    assert "query string" in message, message
        # An inference key.
        status, _, data = guarded.call(r["method"], path, {"Authorization": f"Bearer {guarded.inference_key}"})
        if access == "admin":
            assert status == 403, (where, status, data)
        else:
            assert status not in (401, 403), (where, status, data)
        # The admin key on the main listener: everything but admin routes, which an admin listener
        # serves alone; there no key is needed.
        status, h, data = guarded.call(r["method"], path, ADMIN)
        if access == "admin":
            assert status == 403 and "admin listener only" in error_of(data), (where, status, data)
        else:
            assert status not in (401, 403), (where, status, data)
        status, h, data = guarded.call(r["method"], path, admin=True)
        assert status not in (401, 403), (where, status, data)
        # No CORS for anyone (a foreign page could otherwise read the answers).
        status, h, _ = guarded.call(r["method"], path, {**ADMIN, "Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in h, (where, h)


def test_without_an_admin_listener_admin_routes_take_the_admin_key(tmp_path):
    write_identity_model(tmp_path / "models", "alpha", [("FP32", [4])])
    s = AuthServer(repo=tmp_path / "models", log_path=tmp_path / "ferry.log",
                   extra_args=["--admin-key", ADMIN_KEY, "--require-api-keys", "--data-dir", str(tmp_path / "data")])
    s.wait_for_every_model = False
    s.start()
    try:
        status, _, data = s.call("POST", "/v1/keys", ADMIN, body=b'{"name": "someone"}')
        assert status == 200, data
        inference = {"Authorization": f"Bearer {json.loads(data)['secret']}"}
        admin_routes = [r for r in routes() if r["access"] == "admin"]
        assert len(admin_routes) >= 10
        for r in admin_routes:
            path, where = concrete(r["path"]), f"{r['method']} {r['path']}"
            for headers in ({}, {"Authorization": "Bearer fk_wrong"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
                status, h, data = s.call(r["method"], path, headers)
                assert status == 401 and h.get("www-authenticate") == "Bearer", (where, headers, status, data)
                error_of(data)
            status, _, data = s.call(r["method"], path + f"?api_key={ADMIN_KEY}")
            assert status == 401 and "query string" in error_of(data), (where, data)
            status, _, data = s.call(r["method"], path, inference)
            assert status == 403 and "admin key" in error_of(data), (where, status, data)
            status, _, data = s.call(r["method"], path, ADMIN)
            assert status not in (401, 403), (where, status, data)
    finally:
        assert s.stop() == 0, s.log_text()


def test_every_other_method_is_405_with_allow_and_unknown_paths_404(guarded):
    by_path: dict[str, set[str]] = {}
    for r in routes():
        by_path.setdefault(r["path"], set()).add(r["method"])
    for pattern, allowed in by_path.items():
        for method in METHODS:
            if method in allowed:
                continue
            status, h, data = guarded.call(method, concrete(pattern))
            assert status == 405, (method, pattern, status, data)
            assert set(h["allow"].split(", ")) == allowed, (pattern, h["allow"])
            error_of(data)
    for path in ("/", "/v3", "/v2/models/alpha/infer/more", "/v1/keys/a/b", "/admin", "/.env"):
        status, _, data = guarded.call("GET", path, ADMIN)
        assert status == 404, (path, data)
        error_of(data)


def test_the_admin_listener_refuses_rebinding_and_foreign_origins(guarded):
    for headers in ({"Host": "evil.example"}, {"Host": f"evil.example:{guarded.admin_port}"},
                    {"Host": "localhost.evil.example"},
                    {"Host": f"localhost:{guarded.admin_port}", "Origin": "https://evil.example"},
                    {"Host": f"127.0.0.1:{guarded.admin_port}", "Origin": "null"}):
        status, _, data = guarded.call("GET", "/v1/keys", headers, admin=True)
        assert status == 403, (headers, data)
        message = error_of(data)
        assert "Host" in message or "Origin" in message, message
    for headers in ({"Host": f"localhost:{guarded.admin_port}"},
                    {"Host": f"127.0.0.1:{guarded.admin_port}", "Origin": f"http://localhost:{guarded.admin_port}"}):
        status, _, data = guarded.call("GET", "/v1/keys", headers, admin=True)
        assert status == 200, (headers, data)
    # Probes need no Host check: a load balancer's health check names whatever it likes.
    assert guarded.call("GET", "/v2/health/live", {"Host": "lb.internal"}, admin=True)[0] == 200
    # The main listener does not serve admin routes at all once there is an admin listener.
    status, _, _ = guarded.call("GET", "/v1/keys", {"Host": "localhost"})
    assert status == 403


def test_the_index_is_readable_by_inference_keys_filtered_to_their_models(guarded):
    def index(headers):
        status, _, data = guarded.call("POST", "/v2/repository/index", headers, body=b"{}")
        assert status == 200, data
        return sorted(m["name"] for m in json.loads(data))
    assert index({"Authorization": f"Bearer {guarded.inference_key}"}) == ["alpha", "beta"]
    assert index({"Authorization": f"Bearer {guarded.alpha_key}"}) == ["alpha"]
    assert index(ADMIN) == ["alpha", "beta"]
    status, _, data = guarded.call("POST", "/v2/repository/models/alpha/unload",
                                   {"Authorization": f"Bearer {guarded.alpha_key}"})
    assert status == 403, data
    status, _, data = guarded.call("GET", "/v2", {})
    assert "model_repository" in json.loads(data)["extensions"]


def test_without_keys_anyone_lists_models_but_only_the_operator_loads(ferry):
    status, _, data = ferry.request("POST", "/v2/repository/index", b"{}")
    assert status == 200 and len(json.loads(data)) > 0, data
    status, _, data = ferry.request("POST", "/v2/repository/models/identity_fp32/unload", b"")
    assert status == 403, data
    assert "--admin-key" in error_of(data) and "admin listener" in error_of(data)
    status, _, data = ferry.request("POST", "/v1/schedules", b"{}")
    assert status == 403, data


def test_listening_beyond_loopback_without_keys_warns(tmp_path):
    (tmp_path / "models").mkdir()
    _, text = start_and_read_log(["--http-address", "0.0.0.0", "--http-port", str(free_port())],
                                 "WITHOUT API KEYS", tmp_path)
    assert "WITHOUT API KEYS" in text, text
    _, text = start_and_read_log(["--http-address", "127.0.0.1", "--http-port", str(free_port())],
                                 "listening on", tmp_path)
    assert "listening on" in text and "WITHOUT API KEYS" not in text, text


def test_an_admin_listener_beyond_loopback_needs_the_admin_key(tmp_path):
    (tmp_path / "models").mkdir()
    code, text = start_and_read_log(["--http-address", "127.0.0.1", "--http-port", str(free_port()),
                                     "--admin-address", "0.0.0.0", "--admin-port", str(free_port())],
                                    "listening on", tmp_path)
    assert code == 2, text
    assert "admin listener beyond loopback" in text and "--admin-key" in text, text


def preflight(server: AuthServer, path: str, origin: str, method: str = "POST", headers: str | None = None,
              admin: bool = False):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        h["Access-Control-Request-Headers"] = headers
    return server.call("OPTIONS", path, h, admin=admin)


def test_without_cors_configured_preflights_are_refused(guarded):
    for path in ("/v2/models/alpha/infer", "/v1/jobs", "/v2/health/ready"):
        status, h, data = preflight(guarded, path, "http://evil.test", "GET" if "health" in path else "POST")
        assert status == 403 and "--cors-allow-origin" in error_of(data), (path, status, data)
        assert "access-control-allow-origin" not in h


def test_cors_for_the_origins_configured_only(tmp_path):
    write_identity_model(tmp_path / "models", "alpha", [("FP32", [4])])
    s = AuthServer(repo=tmp_path / "models", log_path=tmp_path / "ferry.log", extra_args=[])
    s.admin_port = free_port()
    s.extra_args = ["--cors-allow-origin", "https://app.example.com", "--admin-port", str(s.admin_port),
                    "--data-dir", str(tmp_path / "data")]
    s.start()
    app = "https://app.example.com"
    try:
        status, h, data = preflight(s, "/v2/models/alpha/infer", app, headers="authorization, content-type")
        assert status == 204, (status, data)
        assert h["access-control-allow-origin"] == app and h["access-control-allow-methods"] == "POST", h
        assert h["access-control-allow-headers"] == "authorization, content-type" and h["vary"] == "Origin", h
        status, h, data = preflight(s, "/v1/jobs/nope", app, method="DELETE")
        assert status == 204 and set(h["access-control-allow-methods"].split(", ")) == {"GET", "DELETE"}, h
        status, h, data = preflight(s, "/v2/models/alpha/infer", app, method="DELETE")
        assert status == 403 and "takes POST" in error_of(data), data
        status, _, data = preflight(s, "/v9/nothing", app)
        assert status == 404, data
        status, _, data = preflight(s, "/v2/models/alpha/infer", app, headers="a\tb c")
        assert status == 400, data
        # An answer to the page the flag names carries the headers; to any other page, none.
        body = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
        status, h, data = s.call("POST", "/v2/models/alpha/infer", {"Origin": app}, body=body.encode())
        assert status == 200 and h["access-control-allow-origin"] == app, (status, h, data)
        assert "inference-header-content-length" in h["access-control-expose-headers"].lower()
        status, h, _ = s.call("GET", "/v2/models/nope", {"Origin": app})
        assert status == 404 and h["access-control-allow-origin"] == app  # errors are readable too
        for other in ("https://evil.test", "http://app.example.com", "https://app.example.com:444"):
            status, h, data = preflight(s, "/v2/models/alpha/infer", other)
            assert status == 403 and other in error_of(data), (other, data)
            status, h, _ = s.call("POST", "/v2/models/alpha/infer", {"Origin": other}, body=body.encode())
            assert status == 200 and "access-control-allow-origin" not in h, (other, h)
        # The admin listener never answers cross-origin pages (and refuses foreign Origins outright).
        status, h, data = preflight(s, "/v1/keys", app, admin=True)
        assert status == 403 and "access-control-allow-origin" not in h, data
    finally:
        assert s.stop() == 0, s.log_text()


@pytest.mark.parametrize("value", ["app.example.com", "https://app.example.com/path", "ftp://x"])
def test_a_cors_value_that_is_not_an_origin_stops_the_start(tmp_path, value):
    (tmp_path / "models").mkdir()
    code, text = start_and_read_log(["--http-address", "127.0.0.1", "--http-port", str(free_port()),
                                     "--cors-allow-origin", value], "listening on", tmp_path)
    assert code not in (0, None) and "is not an origin" in text and value in text, (code, text)
