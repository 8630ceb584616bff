"""The reusable half of bench/run_llm_benchmarks.py: the contenders' processes and a timing SSE client.

  set-up     ensure_tools / ensure_model (build llama-bench and llama-server, write the bench GGUF when
             missing), banned_byte_tokens (reads the GGUF's vocabulary), make_repo (Ferry's model repository)
  servers    LlmServer, ferry_server, llama_server: start one contender, wait until it answers, stop it
  client     Stream / run_streams: streamed POSTs over raw sockets, one new connection each, every
             Server-Sent Event timed when the recv completing it returns; completion_body: the request
  measuring  Window (CPU of the server, this client and everything else), scrape_llm_metrics (Ferry's
             ferry_llm_* counters), llama_tokenizer (llama-server's /tokenize), version_line

Every contender gets the same configuration (THREADS, BATCH, SLOTS x CTX_PER_SLOT) so that the
comparison is like for like. Standard library only, plus bench/run_benchmarks.py's server and machine
helpers.
"""
from __future__ import annotations

import hashlib
import json
import re
import resource
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402  (the shared server and machine helpers)

ROOT = rb.ROOT
LLAMA_BIN = ROOT / "build" / "llama-tools" / "bin"
LLAMA_BENCH = LLAMA_BIN / "llama-bench"
LLAMA_SERVER = LLAMA_BIN / "llama-server"
DEFAULT_MODEL = ROOT / "bench" / "results" / "bench-llm.gguf"
MODEL = "bench_llm"

# The same for every contender (Ferry, llama-server, llama-bench).
THREADS = 2
BATCH = 512
SLOTS = 4
CTX_PER_SLOT = 2048

# ------------------------------------------------------------------------------------------ set-up

def ensure_tools() -> None:
    if LLAMA_BENCH.exists() and LLAMA_SERVER.exists():
        return
    rb.log("building llama-bench and llama-server (scripts/build-llama-tools.sh)")
    subprocess.run(["bash", str(ROOT / "scripts" / "build-llama-tools.sh"), "llama-bench", "llama-server"],
                   cwd=ROOT, check=True)


def ensure_model(path: Path, explicit: bool) -> None:
    if path.exists():
        return
    if explicit:
        raise SystemExit(f"--model {path}: no such file")
    rb.log(f"writing {path} (tools/make_bench_llm.py)")
    subprocess.run(["nice", "/usr/bin/python3", str(ROOT / "tools" / "make_bench_llm.py"), "--out", str(path)],
                   cwd=ROOT, check=True)


def read_gguf_vocab(path: Path) -> tuple[list[str], list[int]]:
    """tokenizer.ggml.tokens and tokenizer.ggml.token_type from a GGUF's header (v2/v3), standard library only."""
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
    with open(path, "rb") as f:
        def read(fmt):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string():
            return f.read(read("<Q")).decode("utf-8", errors="replace")

        def value(t):
            if t == 8:
                return string()
            if t == 9:
                et, n = read("<I"), read("<Q")
                return [value(et) for _ in range(n)]
            return read(scalar[t])

        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        read("<I")  # version
        read("<Q")  # tensor count
        tokens, types = [], []
        for _ in range(read("<Q")):
            key, t = string(), read("<I")
            if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
                v = value(t)
                if key.endswith("tokens"):
                    tokens = v
                else:
                    types = v
                if tokens and types:
                    break
            else:
                value(t)
    return tokens, types


def banned_byte_tokens(path: Path) -> list[int]:
    """Ids of BYTE tokens <0x80>..<0xFF>: lone bytes are invalid UTF-8, which llama-server's parser rejects.

    Both servers get the same -100 logit_bias on them, so that both generate the same tokens."""
    tokens, types = read_gguf_vocab(path)
    out = []
    for i, (tok, typ) in enumerate(zip(tokens, types)):
        m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", tok)
        if typ == 6 and m and int(m.group(1), 16) >= 0x80:
            out.append(i)
    return out


def make_repo(workdir: Path, model: Path, slots: int) -> Path:
    repo = workdir / f"repo-{slots}slot"
    (repo / MODEL / "1").mkdir(parents=True, exist_ok=True)
    link = repo / MODEL / "1" / "model.gguf"
    if not link.exists():
        link.symlink_to(model.resolve())
    (repo / MODEL / "config.yaml").write_text(
        f"name: {MODEL}\nbackend: llama_cpp\nplatform: gguf\nmodel_filename: model.gguf\nmax_queue_size: 64\n"
        f"instance_group: {{count: 1, threads: {THREADS}}}\n"
        f"parameters: {{slots: {slots}, context_per_slot: {CTX_PER_SLOT}, batch_tokens: {BATCH}}}\n")
    return repo


class LlmServer(rb.Server):
    """rb.Server with its own readiness check (llama-server has no /v2/health/ready)."""

    def __init__(self, name, cmd, port, workdir, ready_path: str, ready_text: str | None = None):
        super().__init__(name, cmd, port, workdir)
        self.ready_path, self.ready_text = ready_path, ready_text

    def start(self, timeout_s: float = 300) -> None:
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2) as r:
                    if r.status == 200 and (self.ready_text is None or self.ready_text in r.read().decode()):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready in {timeout_s} s; see {self.log_path}")


# Extra `ferry serve` flags for every Ferry contender (run_llm_benchmarks.py --ferry-arg).
FERRY_EXTRA_ARGS: list[str] = []


def ferry_server(name: str, repo: Path, workdir: Path) -> LlmServer:
    port = rb.free_port()
    cmd = [str(rb.FERRY), "serve", "--model-repository", str(repo), "--http-address", "127.0.0.1",
           "--http-port", str(port), "--model-control-mode", "none", "--data-dir", str(workdir / f"data-{name}"),
           *FERRY_EXTRA_ARGS]
    return LlmServer(name, cmd, port, workdir, "/v1/models", f'"{MODEL}"')


def llama_server(model: Path, workdir: Path) -> LlmServer:
    port = rb.free_port()
    cmd = [str(LLAMA_SERVER), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-t", str(THREADS),
           "-tb", str(THREADS), "-np", str(SLOTS), "-c", str(SLOTS * CTX_PER_SLOT), "-b", str(BATCH),
           "-ub", str(BATCH), "--no-webui"]
    return LlmServer("llama-server", cmd, port, workdir, "/health")


# ------------------------------------------------------------------------------------------ client

class Stream:
    """One streamed POST over its own connection; every SSE event is timed when the recv completing it returns."""

    def __init__(self, port: int, path: str, body: dict, offset_s: float = 0.0):
        data = json.dumps(body).encode()
        self.payload = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                        f"Accept: text/event-stream\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
                        ).encode() + data
        self.port, self.offset_s = port, offset_s
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.body = bytearray()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.chunked = False
        self.complete = False        # chunked terminator seen, or EOF
        self.t_send = self.t_headers = self.t_done = None
        self.events: list[tuple[float, str, dict | None]] = []  # (time, kind, json)
        self.problems: list[str] = []
        self.error: str | None = None

    def open(self) -> None:
        self.t_send = time.perf_counter()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(self.payload)
        self.sock.setblocking(False)

    def feed(self, data: bytes, t: float) -> None:
        self.buf += data
        if self.status is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            self.t_headers = t
            m = re.match(r"HTTP/1\.[01] (\d{3})", head[0])
            self.status = int(m.group(1)) if m else -1
            for line in head[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if self.chunked:
            while not self.complete:
                eol = self.buf.find(b"\r\n")
                if eol < 0:
                    break
                size = int(self.buf[:eol].split(b";")[0] or b"0", 16)
                if size == 0:
                    self.complete = True
                    del self.buf[:]
                    break
                if len(self.buf) < eol + 2 + size + 2:
                    break
                self.body += self.buf[eol + 2:eol + 2 + size]
                if self.buf[eol + 2 + size:eol + 4 + size] != b"\r\n":
                    self.problems.append("bad chunk framing")
                del self.buf[:eol + 4 + size]
        else:
            self.body += self.buf
            del self.buf[:]
        if self.status != 200:
            return
        while True:
            end = self.body.find(b"\n\n")
            if end < 0:
                break
            raw = bytes(self.body[:end])
            del self.body[:end + 2]
            self.on_event(raw, t)

    def on_event(self, raw: bytes, t: float) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.problems.append("event is not valid UTF-8")
            text = raw.decode("utf-8", errors="replace")
        data = []
        for line in text.split("\n"):
            if line.startswith(":"):
                continue  # an SSE comment (llama-server's pings)
            if line.startswith("data: "):
                data.append(line[6:])
            elif line.startswith("data:"):
                data.append(line[5:])
            elif line:
                self.problems.append(f"line outside 'data:': {line[:80]!r}")
        if not data:
            return
        payload = "\n".join(data)
        if self.t_done is not None:
            self.problems.append("event after [DONE]")
        if payload == "[DONE]":
            self.t_done = t
            self.events.append((t, "done", None))
            return
        try:
            obj = json.loads(payload)
        except ValueError:
            self.problems.append(f"event is not JSON: {payload[:80]!r}")
            return
        if "error" in obj:
            self.error = json.dumps(obj["error"])[:300]
            self.events.append((t, "error", obj))
        elif obj.get("choices") == [] and "usage" in obj:
            self.events.append((t, "usage", obj))
        elif obj.get("choices") and obj["choices"][0].get("finish_reason") is not None:
            self.events.append((t, "final", obj))
        elif obj.get("choices"):
            self.events.append((t, "token", obj))
        else:
            self.problems.append(f"unexpected event: {payload[:120]!r}")

    def on_end(self, t: float) -> None:
        """The chunked body ended, or the server closed the connection."""
        self.complete = True
        if self.status is None:
            self.error = self.error or "connection closed before a response"
        elif self.status != 200:
            self.error = f"HTTP {self.status}: {bytes(self.body + self.buf)[:300].decode('utf-8', 'replace')}"
        if self.body.strip():
            self.problems.append(f"{len(self.body)} bytes after the last event")

    def result(self, t0: float) -> dict:
        tokens_t = [t for t, kind, _ in self.events if kind == "token"]
        final = next((o for _, kind, o in self.events if kind == "final"), None)
        final_t = next((t for t, kind, _ in self.events if kind == "final"), None)
        usage = (final or {}).get("usage") or next((o["usage"] for _, k, o in self.events if k == "usage"), None)
        timings = (final or {}).get("timings")
        text = "".join(o["choices"][0].get("text", "") for _, k, o in self.events if k in ("token", "final"))
        n = usage.get("completion_tokens") if usage else None
        problems = list(self.problems)
        if self.status == 200:
            if "text/event-stream" not in self.headers.get("content-type", ""):
                problems.append(f"content-type {self.headers.get('content-type')!r}")
            if self.t_done is None:
                problems.append("no data: [DONE]")
            elif self.events[-1][1] != "done":
                problems.append("[DONE] is not the last event")
            if final is None and self.error is None:
                problems.append("no event with a finish_reason")
            if usage is None and self.error is None:
                problems.append("no usage")
        first = tokens_t[0] if tokens_t else final_t
        out = {
            "status": self.status, "error": self.error, "problems": problems,
            "t_send_s": round(self.t_send - t0, 6) if self.t_send else None,
            "headers_s": round(self.t_headers - self.t_send, 6) if self.t_headers else None,
            "prompt_tokens": usage.get("prompt_tokens") if usage else None,
            "completion_tokens": n, "token_events": len(tokens_t),
            "finish_reason": final["choices"][0]["finish_reason"] if final else None,
            "timings": timings,
            "ttft_s": round(first - self.t_send, 6) if first else None,
            "t_first_s": round(first - t0, 6) if first else None,
            "t_last_s": round(tokens_t[-1] - t0, 6) if tokens_t else None,
            "final_lag_us": round((final_t - tokens_t[-1]) * 1e6, 1) if final_t and tokens_t else None,
            "text_sha1": hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:12],
            "text_head": text[:40],
        }
        if n and n > 1 and len(tokens_t) > 1:
            span = tokens_t[-1] - tokens_t[0]
            out["decode_tps"] = round((n - 1) / span, 3) if span > 0 else None
            out["tpot_ms"] = round(span / (n - 1) * 1e3, 4)
            gaps = [(b - a) * 1e6 for a, b in zip(tokens_t, tokens_t[1:])]
            out["itl_us"] = [round(g, 1) for g in gaps]
            out["itl_p50_us"] = round(statistics.median(gaps), 1)
        return out


def run_streams(port: int, path: str, bodies: list[dict], offsets: list[float] | None = None,
                timeout_s: float = 1800) -> tuple[list[dict], float]:
    """Opens each stream at its offset (seconds after the start) and reads all of them in one thread."""
    offsets = offsets or [0.0] * len(bodies)
    streams = [Stream(port, path, b, o) for b, o in zip(bodies, offsets)]
    pending = sorted(streams, key=lambda s: s.offset_s)
    sel = selectors.DefaultSelector()
    active = 0
    t0 = time.perf_counter()
    deadline = t0 + timeout_s
    while pending or active:
        now = time.perf_counter()
        while pending and now >= t0 + pending[0].offset_s:
            s = pending.pop(0)
            try:
                s.open()
                sel.register(s.sock, selectors.EVENT_READ, s)
                active += 1
            except OSError as e:
                s.error = f"connect/send: {e}"
            now = time.perf_counter()
        if now > deadline:
            for key in list(sel.get_map().values()):
                key.data.error = key.data.error or f"timed out after {timeout_s} s"
                sel.unregister(key.fileobj)
                key.fileobj.close()
            break
        wait = min(1.0, deadline - now)
        if pending:
            wait = max(0.0, min(wait, t0 + pending[0].offset_s - now))
        for key, _ in sel.select(wait):
            s: Stream = key.data
            try:
                data = s.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                data = b""
                s.error = s.error or f"recv: {e}"
            t = time.perf_counter()
            if data:
                s.feed(data, t)
            if not data or s.complete:
                s.on_end(t)
                sel.unregister(s.sock)
                s.sock.close()
                active -= 1
    sel.close()
    return [s.result(t0) for s in streams], t0


def completion_body(prompt: str, max_tokens: int, bias: dict) -> dict:
    """Greedy, exactly max_tokens long, usage in the stream; the same body for both servers, logit_bias
    included. cache_prompt: false keeps llama-server from reusing an earlier prompt's KV cache."""
    return {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}, "cache_prompt": False, "logit_bias": bias}


# --------------------------------------------------------------------------------------- measuring

class Window:
    """CPU accounting of one measurement: the server, this client, and everything else on the machine."""

    def __init__(self, server: rb.Server | None = None):
        self.server = server

    def __enter__(self):
        self.ru0 = resource.getrusage(resource.RUSAGE_SELF)
        self.b0, _ = rb.cpu_busy_ticks()
        self.s0 = self.server.cpu_ticks() if self.server else 0
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        wall = time.monotonic() - self.t0
        b1, _ = rb.cpu_busy_ticks()
        s1 = self.server.cpu_ticks() if self.server else 0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        client = (ru1.ru_utime - self.ru0.ru_utime) + (ru1.ru_stime - self.ru0.ru_stime)
        server = (s1 - self.s0) / rb.TICKS
        busy = (b1 - self.b0) / rb.TICKS
        self.cpu = {"wall_s": round(wall, 3), "server_cpu_s": round(server, 3), "client_cpu_s": round(client, 3),
                    "other_cpu_cores": round(max(0.0, busy - server - client) / max(wall, 1e-9), 3),
                    "loadavg": rb.loadavg()}
        return False


def llama_tokenizer(server: LlmServer):
    def tokenize(text: str) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{server.port}/tokenize",
                                     data=json.dumps({"content": text, "add_special": True}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return len(json.loads(r.read())["tokens"])
    return tokenize


def scrape_llm_metrics(server: rb.Server) -> dict[str, float]:
    values = {}
    for line in server.get("/metrics").splitlines():
        m = re.match(r'(ferry_llm_\w+?)(_sum|_count|_total)?\{([^}]*)\}\s+(\S+)', line)
        if m and f'model="{MODEL}"' in m.group(3) and "_bucket" not in m.group(1) and 'le="' not in m.group(3):
            values[m.group(1) + (m.group(2) or "")] = float(m.group(4))
    return values


def version_line(cmd: list[str]) -> str | None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.startswith("version")]
    return lines[0] if lines else None
