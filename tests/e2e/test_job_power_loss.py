"""R2 — simulated power loss for the job store (/v1/jobs; <data-dir>/jobs.db, SQLite in WAL mode).

LazyFS, which drops every write not yet fsynced when it "loses power", needs FUSE, which CI lacks. The
fallback the reliability spec prescribes checks the order of syscalls instead: Ferry runs under
`strace -f`, and with `--job-durability durable`, for every job answered 202, an fsync/fdatasync of
jobs.db-wal must start after the WAL commit holding that job's insert was written and complete before the
202's first byte goes to the socket. One fsync may cover many jobs (group commit). A job's insert is found
as the first WAL page write that holds its id (strace shows whole 4 KiB pages), its commit as the first
WAL frame header with a non-zero "database size" field from there on.

- durable: three cycles of start under strace, concurrent submits with distinct idempotency keys,
  SIGKILL mid-submission. Each trace passes the check, and the store left behind passes
  PRAGMA integrity_check and holds every job that was answered 202.
- fast (synchronous=NORMAL: no fsync at commit): the same check flags most 202s, so it can fail.

Why the order in the trace can be trusted: a thread stopped at the return of fdatasync cannot run on until
strace has logged that return, so a 202 sent because of that fsync is logged after it.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import EXAMPLES, FerryServer, ferry_binary, free_port

SYSCALLS = "write,pwrite64,writev,sendmsg,sendto,fsync,fdatasync"
WAL_PAGE = 4096
BODY = json.dumps({"model": "identity", "request": {"inputs": [
    {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": [float(i) for i in range(16)]}]}}).encode()

LINE = re.compile(r"^(\d+) +\S+ +(.*)$")  # pid, -tt time, the rest
CALL = re.compile(r"^(\w+)\((?:\d+<([^>]*)>)?")  # name and, thanks to -y, the path of a first fd argument
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)")
ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v", b"f": b"\f"}


def unescape(text: str) -> bytes:
    def one(m: re.Match) -> bytes:
        e = m.group(1)
        return bytes([int(e, 8)]) if e[:1].isdigit() else ESCAPES.get(e, e)
    return ESCAPE.sub(one, text.encode("latin-1"))


@dataclass
class Trace:
    """What matters in one strace log; positions are trace line numbers, in the order strace saw events."""
    wal_writes: list[tuple[int, bytes]] = field(default_factory=list)  # (returned at, bytes written)
    wal_syncs: list[tuple[int, int]] = field(default_factory=list)     # (started at, returned 0 at)
    accepted: list[tuple[int, str]] = field(default_factory=list)      # (202 started at, job id)


def parse_trace(path: Path) -> Trace:
    trace = Trace()
    pending: dict[str, tuple[str, str, str, int]] = {}  # pid -> a call strace split in two
    with open(path, encoding="latin-1") as f:
        for pos, line in enumerate(f, start=1):
            m = LINE.match(line.rstrip("\n"))
            if not m:
                continue
            pid, rest = m.groups()
            if RESUMED.match(rest):
                if pid not in pending:
                    continue
                name, target, args, started = pending.pop(pid)
            else:
                call = CALL.match(rest)
                if not call:
                    continue  # +++ exited +++, --- SIGNAL ---
                name, target, args, started = call.group(1), call.group(2) or "", rest, pos
                if name in ("write", "writev", "sendmsg", "sendto") and target.startswith(("socket:", "TCP")):
                    sent = unescape("".join(STRING.findall(rest)))
                    if sent.startswith(b"HTTP/1.1 202 "):  # counts from the moment its write starts
                        location = re.search(rb"Location: /v1/jobs/([0-9a-f]+)", sent)
                        trace.accepted.append((pos, location.group(1).decode() if location else ""))
                if rest.endswith("<unfinished ...>"):
                    pending[pid] = (name, target, rest, pos)
                    continue
            result = rest.rsplit(") = ", 1)[-1]
            if not target.endswith("jobs.db-wal") or result.startswith(("-1", "?")):
                continue
            if name in ("fsync", "fdatasync"):
                trace.wal_syncs.append((started, pos))
            elif name in ("write", "pwrite64"):
                trace.wal_writes.append((pos, unescape(STRING.findall(args)[0])))
    return trace


def commit_written(trace: Trace, job_id: str) -> int | None:
    """Where the WAL commit holding the job's insert had been written in full, or None if it never was."""
    key = job_id.encode()
    first = next((i for i, (_, data) in enumerate(trace.wal_writes) if key in data), None)
    if first is None:
        return None
    # Each frame is a 24-byte header write, then the page; bytes 4..8 of the header are non-zero on a commit frame.
    for i in range(max(first - 1, 0), len(trace.wal_writes) - 1):
        header = trace.wal_writes[i][1]
        if len(header) == 24 and header[4:8] != b"\0\0\0\0" and len(trace.wal_writes[i + 1][1]) == WAL_PAGE:
            return trace.wal_writes[i + 1][0]
    return None


def unsynced_202s(trace: Trace) -> tuple[list[str], dict[int, int]]:
    """The 202s with no WAL fsync wholly between the job's commit and the reply, and jobs per commit."""
    bad, per_commit = [], {}
    for sent_at, job_id in trace.accepted:
        committed = commit_written(trace, job_id) if job_id else None
        if committed is None or committed > sent_at:
            bad.append(f"line {sent_at}: 202 for {job_id or '?'} but its commit is not in the WAL before it")
            continue
        per_commit[committed] = per_commit.get(committed, 0) + 1
        if not any(committed < start and done < sent_at for start, done in trace.wal_syncs):
            bad.append(f"line {sent_at}: 202 for {job_id}, no WAL fsync since its commit (line {committed})")
    return bad, per_commit


class Submitters:
    """Client threads submitting one new job per key until the server goes away."""

    def __init__(self, port: int, prefix: str, threads: int = 4):
        self.port, self.prefix = port, prefix
        self.accepted: list[str] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]

    def _run(self, t: int) -> None:
        for i in range(100000):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("POST", "/v1/jobs", body=BODY, headers={"Idempotency-Key": f"{self.prefix}-{t}-{i}"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                return  # killed
            finally:
                conn.close()
            with self.lock:
                if resp.status != 202:
                    self.errors.append(f"submit got {resp.status}: {data[:200]!r}")
                    return
                self.accepted.append(json.loads(data)["id"])


def kill_ferry(strace: subprocess.Popen) -> None:
    """SIGKILL Ferry itself: strace, started with -o FILE PROG, ignores fatal signals, and exits once its
    tracee is dead. Waits for strace, so the trace is complete."""
    if strace.poll() is None:
        for pid in Path(f"/proc/{strace.pid}/task/{strace.pid}/children").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
    strace.wait(timeout=60)


def run_cycle(tmp_path: Path, repo: Path, data: Path, name: str, durability: str, jobs: int):
    """Serve under strace, submit until `jobs` got a 202, SIGKILL Ferry; returns (trace, ids the client got)."""
    if shutil.which("strace") is None:
        pytest.fail("strace is needed for the power-loss check (R2); scripts/install-deps.sh installs it")
    trace_path = tmp_path / f"{name}.strace"
    server = FerryServer(repo=repo, log_path=tmp_path / f"{name}.log")
    for _attempt in range(3):  # a free port can be taken between the probe and the bind
        server.port = free_port()
        args = ["strace", "-f", "-tt", "-y", "-s", str(WAL_PAGE), "-e", f"trace={SYSCALLS}", "-o", str(trace_path),
                str(ferry_binary()), "serve", "--model-repository", str(repo), "--http-address", server.host,
                "--http-port", str(server.port), "--model-control-mode", "none", "--data-dir", str(data),
                "--job-durability", durability]
        with open(server.log_path, "ab") as log:
            log.write(f"\n==== {' '.join(args)}\n".encode())
            log.flush()
            server.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ok, error = server._wait_ready()
        if ok:
            break
        kill_ferry(server.process)
        if "cannot listen" not in server.log_text():
            break
    assert ok, f"Ferry did not start under strace: {error}\n--- log ---\n{server.log_text()}"
    clients = Submitters(server.port, name)
    try:
        for t in clients.threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(clients.accepted) < jobs and not clients.errors and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        kill_ferry(server.process)  # mid-submission: no drain, no clean close
    for t in clients.threads:
        t.join(timeout=30)
    assert not clients.errors, f"{clients.errors[:3]}\n--- log ---\n{server.log_text()}"
    assert len(clients.accepted) >= jobs, f"only {len(clients.accepted)} of {jobs} submits answered in 60 s"
    trace = parse_trace(trace_path)
    missing = set(clients.accepted) - {job_id for _, job_id in trace.accepted}
    assert not missing, f"202s the client got are not in the trace (parser broken?): {sorted(missing)[:3]}"
    return trace, clients.accepted


def check_store(tmp_path: Path, data: Path, ids: set[str]) -> None:
    """The store as SIGKILL left it (a copy, so recovery here does not change what the next start sees)."""
    copy = tmp_path / "check"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    for suffix in ("", "-wal"):  # not -shm: it is rebuilt from the WAL, as after a reboot
        if (data / f"jobs.db{suffix}").exists():
            shutil.copy(data / f"jobs.db{suffix}", copy / f"jobs.db{suffix}")
    db = sqlite3.connect(copy / "jobs.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0] for row in db.execute("SELECT id FROM jobs")}
    finally:
        db.close()
    lost = ids - stored
    assert not lost, f"{len(lost)} jobs answered 202 are not in jobs.db, e.g. {sorted(lost)[:3]}"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "models"  # the identity model only: quick to load, also under ASan and strace
    shutil.copytree(EXAMPLES / "identity", repo / "identity")
    return repo


def test_every_202_follows_a_completed_wal_fsync_in_durable_mode(tmp_path: Path, repo: Path):
    data, rng, answered = tmp_path / "data", random.Random(20261128), set()
    for cycle in range(3):
        trace, client_ids = run_cycle(tmp_path, repo, data, f"durable-{cycle}", "durable", rng.randint(40, 60))
        answered |= {job_id for _, job_id in trace.accepted}
        check_store(tmp_path, data, answered)
        bad, per_commit = unsynced_202s(trace)
        assert not bad, (f"{len(bad)} of {len(trace.accepted)} 202s were sent before their job was fsynced "
                         f"(trace {tmp_path / f'durable-{cycle}.strace'}):\n" + "\n".join(bad[:10]))
        print(f"durable cycle {cycle}: {len(trace.accepted)} 202s ({len(client_ids)} received), "
              f"{len(trace.wal_syncs)} WAL fsyncs, {len(per_commit)} commits holding them, "
              f"up to {max(per_commit.values())} jobs per commit")


def test_the_check_fails_in_fast_mode(tmp_path: Path, repo: Path):
    """Negative control: with synchronous=NORMAL the WAL is fsynced only when created and at checkpoints
    (every 1000 pages), so most 202s go out with their job in the page cache alone, and the check says so."""
    data = tmp_path / "data"
    trace, _ = run_cycle(tmp_path, repo, data, "fast", "fast", 60)
    check_store(tmp_path, data, {job_id for _, job_id in trace.accepted})  # a crash of Ferry alone loses nothing
    bad, _ = unsynced_202s(trace)
    print(f"fast: {len(trace.accepted)} 202s, {len(trace.wal_syncs)} WAL fsyncs, {len(bad)} 202s not fsynced")
    assert len(bad) > len(trace.accepted) // 2, f"only {len(bad)} of {len(trace.accepted)} 202s flagged"
    assert all("no WAL fsync since its commit" in b for b in bad), bad[:3]
