"""End-to-end fixtures: a real Ferry process serving a temporary copy of examples/models.

The binary is $FERRY_BINARY, else build/release/ferry when it exists, else build/debug/ferry.
Every server started here logs to a file; a failing test gets the tail of that log in its report, and
teardown sends SIGTERM and requires exit code 0 within 30 s.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "models"
REFERENCE = ROOT / "tools" / "reference"

ALL_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                 "FP16", "FP32", "FP64", "BF16", "BYTES"]
MAX_BATCH = 8
EXIT_TIMEOUT_S = 30
START_TIMEOUT_S = 30


def ident_model_name(datatype: str) -> str:
    return f"ident_{datatype.lower()}"


def ferry_binary() -> Path:
    env = os.environ.get("FERRY_BINARY")
    if env:
        return Path(env).resolve()
    release = ROOT / "build" / "release" / "ferry"
    return release if release.exists() else ROOT / "build" / "debug" / "ferry"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_identity_model(repo: Path, name: str, inputs, max_batch_size: int = MAX_BATCH, extra: str = "") -> None:
    """An identity-backend model: output i (OUTPUTi) mirrors input i (INPUTi). `inputs` is
    [(datatype, dims), ...]; `extra` is more config YAML (parameters, instance_group, ...). The version
    folder only has to exist."""
    lines = [f"name: {name}", "backend: identity", f"max_batch_size: {max_batch_size}", *extra.splitlines(), "inputs:"]
    for i, (dt, dims) in enumerate(inputs):
        lines.append(f"  - {{name: INPUT{i}, datatype: {dt}, dims: {list(dims)}}}")
    lines.append("outputs:")
    for i, (dt, dims) in enumerate(inputs):
        lines.append(f"  - {{name: OUTPUT{i}, datatype: {dt}, dims: {list(dims)}}}")
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.yaml").write_text("\n".join(lines) + "\n")


def identity_body(value: float, batch: bool = False) -> bytes:
    """An OIP request for a write_identity_model model taking FP32 [4]: INPUT0 filled with `value`,
    shape [1, 4] for a batching model, [4] for one with max_batch_size 0."""
    return json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4] if batch else [4],
                                   "data": [value] * 4}]}).encode()


def make_repository(dest: Path) -> Path:
    """examples/models plus identity-backend models: ident_<dtype> ([-1] per row, batched) for every
    datatype, and ident_multi (three inputs of different types, unbatched)."""
    shutil.copytree(EXAMPLES, dest)
    for dt in ALL_DATATYPES:
        write_identity_model(dest, ident_model_name(dt), [(dt, [-1])])
    write_identity_model(dest, "ident_multi", [("FP32", [4]), ("INT32", [4]), ("BYTES", [2])], max_batch_size=0)
    return dest


def model_names(repo: Path) -> list[str]:
    return sorted(p.name for p in repo.iterdir() if (p / "config.yaml").exists())


@dataclass
class FerryServer:
    repo: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen | None = None
    stopped: bool = False

    @property
    def url(self) -> str:
        """host:port, as tritonclient and perf_analyzer take it."""
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_text(self, tail_bytes: int = 20000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return data[-tail_bytes:].decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def get(self, path: str, timeout: float = 5.0, headers: dict | None = None):
        return self.request("GET", path, timeout=timeout, headers=headers)

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 5.0):
        """One request on a fresh connection; returns (status, headers dict lower-cased, body bytes)."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def start(self) -> None:
        binary = ferry_binary()
        assert binary.exists(), f"Ferry binary {binary} not found (set FERRY_BINARY or build build/lead)"
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between the probe and the bind
            self.port = free_port()
            args = [str(binary), "serve", "--model-repository", str(self.repo), "--http-address", self.host,
                    "--http-port", str(self.port), "--repository-poll-secs", "0.2", *self.extra_args]
            if "--exit-timeout-secs" not in self.extra_args:
                args += ["--exit-timeout-secs", "10"]
            if "--data-dir" not in self.extra_args:  # each server its own job store, beside its log
                args += ["--data-dir", str(self.log_path.parent / f"{self.log_path.stem}-data")]
            log = open(self.log_path, "ab")
            log.write(f"\n==== {' '.join(args)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=ROOT)
            log.close()
            ok, last_error = self._wait_ready()
            if ok:
                return
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if "cannot listen" not in self.log_text():
                break
        raise RuntimeError(f"Ferry did not become ready: {last_error}\n--- server log ---\n{self.log_text()}")

    # Started means /v2/health/ready answers 200 (the first loads have settled) and, unless a subclass
    # serves models meant to fail, every model of the repository is ready.
    start_timeout_s = START_TIMEOUT_S
    wait_for_every_model = True

    def _wait_ready(self) -> tuple[bool, str]:
        deadline = time.monotonic() + self.start_timeout_s
        error = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False, f"exited with code {self.process.returncode}"
            try:
                status, _, _ = self.get("/v2/health/ready", timeout=1.0)
                if status == 200 and (not self.wait_for_every_model or all(
                        self.get(f"/v2/models/{m}/ready", timeout=1.0)[0] == 200 for m in model_names(self.repo))):
                    return True, ""
                error = f"ready answered {status}"
            except OSError as e:
                error = repr(e)
            time.sleep(0.05)
        return False, f"timed out after {self.start_timeout_s}s ({error})"

    def stop(self) -> int:
        """SIGTERM; returns the exit code (None-safe: kills and fails after EXIT_TIMEOUT_S)."""
        if self.stopped or self.process is None:
            return self.process.returncode if self.process else 0
        self.stopped = True
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"Ferry did not exit within {EXIT_TIMEOUT_S}s of SIGTERM\n"
                                 f"--- server log ---\n{self.log_text()}")


_SERVERS: list[FerryServer] = []


def _start_server(tmp_path_factory, name: str, extra_args=()) -> FerryServer:
    base = tmp_path_factory.mktemp(name)
    server = FerryServer(repo=make_repository(base / "models"), log_path=base / "ferry.log",
                         extra_args=list(extra_args))
    server.start()
    _SERVERS.append(server)
    return server


def _stop_server(server: FerryServer) -> None:
    was_alive = server.alive()
    code = server.stop()
    assert was_alive, f"Ferry had already exited (code {code}) before teardown\n--- server log ---\n{server.log_text()}"
    assert code == 0, f"Ferry exited with code {code} after SIGTERM\n--- server log ---\n{server.log_text()}"


@pytest.fixture(scope="session")
def ferry(tmp_path_factory):
    """The shared server (default flags, poll mode, no admin key)."""
    server = _start_server(tmp_path_factory, "ferry")
    yield server
    _stop_server(server)


@pytest.fixture(scope="module")
def ferry_admin(tmp_path_factory):
    """A server of the module's own, with --admin-key (see ADMIN_KEY), so it may mutate its repository."""
    server = _start_server(tmp_path_factory, "ferry_admin", ["--admin-key", ADMIN_KEY])
    yield server
    _stop_server(server)


ADMIN_KEY = "e2e-admin-key"


@pytest.fixture(autouse=True, scope="module")
def _servers_survive_module():
    yield
    dead = [s for s in _SERVERS if not s.stopped and not s.alive()]
    for s in dead:
        s.stopped = True  # reported here; teardown need not report it again
    assert not dead, "Ferry died during this module:\n" + "\n".join(
        f"exit code {s.process.returncode}\n--- server log ---\n{s.log_text()}" for s in dead)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        used = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, FerryServer)]
        for server in used or _SERVERS:
            if server.process is not None:
                state = "alive" if server.alive() else f"exited {server.process.returncode}"
                report.sections.append((f"ferry log {server.log_path} ({state})", server.log_text()))


def start_and_read_log(args: list[str], wait_for: str, tmp_path: Path, timeout_s: float = 20,
                       exit_timeout_s: float = 30) -> tuple[int | None, str]:
    """`ferry serve` on tmp_path/models with its data in tmp_path/data and its log in tmp_path/ferry.log,
    until `wait_for` shows in the log (or it exits, or timeout_s passes); then SIGTERM, which it must
    obey within exit_timeout_s. Returns its exit code and log."""
    log = tmp_path / "ferry.log"
    with open(log, "wb") as out:
        p = subprocess.Popen([str(ferry_binary()), "serve", "--model-repository", str(tmp_path / "models"),
                              "--data-dir", str(tmp_path / "data"), *args], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and p.poll() is None and wait_for not in log.read_text():
            time.sleep(0.05)
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=exit_timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError(f"Ferry did not exit within {exit_timeout_s}s of SIGTERM\n{log.read_text()}")
    return p.returncode, log.read_text()


def wait_for(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Polls `predicate` until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def metric_samples(server: FerryServer, name: str) -> list[tuple[dict, float]]:
    """Every sample of one metric on the server's /metrics as (labels, value)."""
    _, _, text = server.get("/metrics")
    samples = []
    for line in text.decode().splitlines():
        m = re.match(rf"^{name}\{{([^}}]*)\}} (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            samples.append((labels, float(m.group(2))))
    return samples


def model_metric(server: FerryServer, name: str, model: str) -> float:
    """The sum of one metric's samples for `model`."""
    return sum(v for labels, v in metric_samples(server, name) if labels.get("model") == model)


def load_reference(name: str) -> dict:
    return json.loads((REFERENCE / f"{name}.json").read_text())


def repository_index(server: FerryServer) -> list[dict]:
    """POST /v2/repository/index with the admin key (servers started with --admin-key ADMIN_KEY)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("POST", "/v2/repository/index", body=b"{}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, body
        return json.loads(body)
    finally:
        conn.close()


def wait_for_entry(server: FerryServer, model: str, version: str, predicate, what: str,
                   timeout_s: float = 30.0) -> dict:
    """Polls the repository index until the model version's entry satisfies `predicate`."""
    deadline = time.monotonic() + timeout_s
    entry = None
    while time.monotonic() < deadline:
        entry = next((e for e in repository_index(server)
                      if e.get("name") == model and e.get("version") == version), None)
        if entry is not None and predicate(entry):
            return entry
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {model} version {version} {what}; last entry {entry}; "
                         f"index {repository_index(server)}")
