"""Language models over OpenAI's API, Triton's generate and the generation WebSocket, against the real
binary and the committed tiny GGUF models (examples/models/tiny_llm, tiny_llm_q4).

- the official `openai` client, unchanged: list models, chat with and without streaming, completions,
  stream_options.include_usage;
- the SSE framing itself, Triton's generate and generate_stream, and every kind of bad request;
- client disconnects (SSE with RST and with FIN, WebSocket): the generation stops within one decode step
  or 500 ms, its slot frees, and the token counter stops;
- continuous batching: two concurrent streams progress in the same decode steps.

The disconnect and batching tests need generations that last seconds; the tiny model finishes its whole
context in a fraction of one, so they use a bigger random-weight model made for the module by
tools/make_bench_llm.py.
"""
from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import threading
import time

import openai
import pytest
import websocket

from conftest import ROOT, FerryServer, make_repository, metric_samples, model_metric

TINY = "tiny_llm"


# ---------------------------------------------------------------------------------------------- helpers

def client(server: FerryServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=30)


def post_json(server: FerryServer, path: str, body, timeout: float = 30.0):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, headers, raw = server.request("POST", path, body=data, headers={"Content-Type": "application/json"},
                                          timeout=timeout)
    return status, headers, raw


def metric(server: FerryServer, name: str, model: str) -> float:
    return model_metric(server, name, model)


def open_sse(server: FerryServer, path: str, body: dict) -> socket.socket:
    """Sends a streaming request on a raw socket and reads up to the first data event; returns the socket."""
    sock = socket.create_connection((server.host, server.port), timeout=30)
    data = json.dumps(body).encode()
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    received = b""
    while b"data: " not in received or b"\n\n" not in received.split(b"data: ", 1)[1]:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before the first event: {received!r}"
        received += chunk
    head = received.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 200"), head
    assert "text/event-stream" in head
    return sock


def read_sse_events(raw: bytes) -> list[str]:
    """The data payloads of a de-chunked SSE body."""
    return [line[len("data: "):] for line in raw.decode().split("\n") if line.startswith("data: ")]


def wait_for(predicate, timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ------------------------------------------------------------------------------------- the openai client

def test_openai_lists_the_language_models(ferry):
    ids = [m.id for m in client(ferry).models.list().data]
    assert TINY in ids and "tiny_llm_q4" in ids
    assert "cnn" not in ids  # tensor models are not language models


def test_openai_chat_completion(ferry):
    r = client(ferry).chat.completions.create(model=TINY, messages=[{"role": "user", "content": "Hello there"}],
                                              max_tokens=24, temperature=0)
    choice = r.choices[0]
    assert r.object == "chat.completion" and r.model == TINY and r.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_openai_chat_streaming_with_usage(ferry):
    stream = client(ferry).chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "Tell me about the license."}], max_tokens=32,
        temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason in ("stop", "length")
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens <= 32
    # The streamed text is what the same greedy request answers whole.
    whole = client(ferry).chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "Tell me about the license."}], max_tokens=32,
        temperature=0)
    assert whole.choices[0].message.content == text
    assert whole.usage.completion_tokens == usage.usage.completion_tokens


def test_openai_completions_greedy_is_deterministic(ferry):
    c = client(ferry)
    a = c.completions.create(model=TINY, prompt="The license", max_tokens=20, temperature=0)
    b = c.completions.create(model=TINY, prompt="The license", max_tokens=20, temperature=0)
    assert a.object == "text_completion" and a.choices[0].text == b.choices[0].text
    assert a.usage.completion_tokens == 20 and a.choices[0].finish_reason == "length"
    assert re.search(r"[a-z]", a.choices[0].text), a.choices[0].text


def test_openai_completions_stream(ferry):
    stream = client(ferry).completions.create(model="tiny_llm_q4", prompt="The software", max_tokens=16,
                                              temperature=0.8, seed=7, stream=True)
    chunks = list(stream)
    assert sum(1 for c in chunks if c.choices and c.choices[0].text) >= 1
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_sampling_with_a_seed_is_repeatable(ferry):
    c = client(ferry)
    kw = dict(model=TINY, prompt="Permission is", max_tokens=24, temperature=1.0, top_p=0.9, seed=1234)
    assert c.completions.create(**kw).choices[0].text == c.completions.create(**kw).choices[0].text


def test_stop_strings_end_the_text_before_them(ferry):
    c = client(ferry)
    free = c.completions.create(model=TINY, prompt="The license", max_tokens=40, temperature=0).choices[0].text
    stop = free[10:12]
    assert stop.strip(), free
    cut = c.completions.create(model=TINY, prompt="The license", max_tokens=40, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == free[:free.index(stop)]


# ----------------------------------------------------------------------------------- wire format, Triton

def test_sse_framing_and_timings(ferry):
    status, headers, raw = post_json(ferry, "/v1/chat/completions", {
        "model": TINY, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": True,
        "stream_options": {"include_usage": True}})
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = read_sse_events(raw)
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    assert all(p["object"] == "chat.completion.chunk" and p["id"] == parsed[0]["id"] for p in parsed)
    final = [p for p in parsed if p["choices"] and p["choices"][0]["finish_reason"]][0]
    assert final["timings"]["prompt_n"] > 0 and "predicted_per_second" in final["timings"]
    assert parsed[-1]["usage"]["completion_tokens"] <= 8


def test_triton_generate_and_generate_stream(ferry):
    status, _, raw = post_json(ferry, f"/v2/models/{TINY}/generate",
                               {"text_input": "The license", "parameters": {"max_tokens": 12, "temperature": 0}})
    assert status == 200, raw
    whole = json.loads(raw)
    assert whole["model_name"] == TINY and whole["model_version"] == "1" and whole["text_output"]
    status, headers, raw = post_json(ferry, f"/v2/models/{TINY}/generate_stream",
                                     {"text_input": "The license", "max_tokens": 12, "temperature": 0})
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = [json.loads(e) for e in read_sse_events(raw)]
    assert "".join(e["text_output"] for e in events) == whole["text_output"]
    assert events[-1]["finish_reason"] == "length"


# ------------------------------------------------------------------------------------------ bad requests

BAD_REQUESTS = [
    ("/v1/chat/completions", {"model": "no_such_model", "messages": [{"role": "user", "content": "x"}]}, 404),
    ("/v1/chat/completions", {"model": TINY, "messages": "hello"}, 400),
    ("/v1/chat/completions", {"model": TINY}, 400),
    ("/v1/chat/completions", {"model": TINY, "messages": []}, 400),
    ("/v1/chat/completions", {"model": TINY, "messages": [{"content": "no role"}]}, 400),
    ("/v1/chat/completions", {"model": TINY, "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, 400),
    ("/v1/chat/completions", {"model": TINY, "messages": [{"role": "user", "content": "x"}], "max_tokens": "8"}, 400),
    ("/v1/chat/completions", {"model": TINY, "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400),
    ("/v1/chat/completions", {"model": TINY, "messages": [{"role": "user", "content": "x"}], "top_p": 2}, 400),
    ("/v1/chat/completions", {"model": TINY, "messages": [{"role": "user", "content": "x"}], "n": 3}, 400),
    ("/v1/chat/completions", {"model": TINY, "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, 400),
    ("/v1/completions", {"model": TINY, "prompt": 42}, 400),
    ("/v1/completions", {"model": TINY}, 400),
    ("/v1/completions", {"prompt": "x"}, 400),
    ("/v1/completions", {"model": TINY, "prompt": "x", "stop": [1, 2]}, 400),
    ("/v1/completions", {"model": "cnn", "prompt": "x"}, 400),
    ("/v1/completions", {"model": TINY, "prompt": "x " * 5000}, 400),  # beyond the context
    ("/v1/completions", b"{not json", 400),
    ("/v1/completions", b'{"model": "tiny_llm", "prompt": "\xff\xfe"}', 400),  # not UTF-8
    ("/v1/completions", b"[1, 2]", 400),
    (f"/v2/models/{TINY}/generate", {"max_tokens": 3}, 400),
    ("/v2/models/cnn/generate", {"text_input": "x"}, 400),
]


@pytest.mark.parametrize("path,body,expected", BAD_REQUESTS)
def test_bad_requests_get_an_openai_shaped_error(ferry, path, body, expected):
    status, headers, raw = post_json(ferry, path, body)
    assert status == expected, raw
    assert headers["content-type"] == "application/json"
    error = json.loads(raw)["error"]
    if path.startswith("/v1/"):
        assert error["message"] and error["type"] and error["code"] == expected
    else:
        assert isinstance(error, str) and error
    assert ferry.get("/v2/health/live")[0] == 200


def test_wrong_methods(ferry):
    assert ferry.get("/v1/completions")[0] == 405
    assert ferry.request("POST", "/v1/models", body=b"{}")[0] == 405


def test_openai_client_raises_on_errors(ferry):
    with pytest.raises(openai.NotFoundError):
        client(ferry).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client(ferry).completions.create(model=TINY, prompt="x", max_tokens=-5)


# ------------------------------------------------------------------------------------------- WebSocket

def ws_connect(server: FerryServer) -> websocket.WebSocket:
    return websocket.create_connection(f"ws://{server.host}:{server.port}/v1/ws/generate", timeout=30)


def test_websocket_runs_several_generations_on_one_connection(ferry):
    ws = ws_connect(ferry)
    try:
        ws.send(json.dumps({"type": "generate", "id": "a", "model": TINY, "prompt": "The license",
                            "max_tokens": 10, "temperature": 0}))
        ws.send(json.dumps({"type": "generate", "id": "b", "model": TINY,
                            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "temperature": 0}))
        ws.send("not json")
        text = {"a": "", "b": ""}
        done = {}
        errors = []
        while len(done) < 2 or not errors:
            m = json.loads(ws.recv())
            if m["type"] == "token":
                text[m["id"]] += m["text"]
            elif m["type"] == "done":
                done[m["id"]] = m
            elif m["type"] == "error":
                errors.append(m)
        assert errors[0]["id"] is None and errors[0]["error"]["code"] == 400
        assert done["a"]["usage"]["completion_tokens"] == 10 and done["a"]["finish_reason"] == "length"
        whole = client(ferry).completions.create(model=TINY, prompt="The license", max_tokens=10, temperature=0)
        assert text["a"] == whole.choices[0].text
        # Errors name the generation; the connection stays usable.
        ws.send(json.dumps({"type": "generate", "id": "c", "model": "nope", "prompt": "x"}))
        m = json.loads(ws.recv())
        assert m == {"type": "error", "id": "c", "error": m["error"]} and m["error"]["code"] == 404
        ws.send(json.dumps({"type": "cancel", "id": "zzz"}))
        assert json.loads(ws.recv())["error"]["code"] == 404
    finally:
        ws.close()


def test_websocket_endpoint_needs_an_upgrade(ferry):
    assert ferry.get("/v1/ws/generate")[0] == 426


# ------------------------------------------- slow model: disconnects and continuous batching (module server)

SLOW = "slow_llm"


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("slow_llm")
    repo = make_repository(base / "models")
    version = repo / SLOW / "1"
    version.mkdir(parents=True)
    subprocess.run(["/usr/bin/python3", str(ROOT / "tools" / "make_bench_llm.py"), "--out", str(version / "model.gguf"),
                    "--dim", "256", "--layers", "4", "--ffn", "768", "--heads", "4", "--context", "4096"],
                   check=True, cwd=ROOT)
    (repo / SLOW / "config.yaml").write_text(
        f"name: {SLOW}\nbackend: llama_cpp\nplatform: gguf\nmodel_filename: model.gguf\nmax_queue_size: 8\n"
        "max_concurrent_requests: 3\n"
        "instance_group: {count: 1, threads: 2}\nparameters: {slots: 4, context_per_slot: 4096, batch_tokens: 512}\n")
    server = FerryServer(repo=repo, log_path=base / "ferry.log")
    server.start_timeout_s = 60
    server.start()
    yield server
    assert server.alive(), server.log_text()
    assert server.stop() == 0, server.log_text()


LONG = {"model": SLOW, "prompt": "a", "max_tokens": 4000, "ignore_eos": True, "stream": True}


def generation_stops(server: FerryServer) -> None:
    """The running gauge returns to 0 and the token counter stops, within 500 ms of a disconnect."""
    assert wait_for(lambda: metric(server, "ferry_llm_num_requests_running", SLOW) == 0, 0.5), \
        "the generation kept its slot after the client left"
    before = metric(server, "ferry_llm_generation_tokens_total", SLOW)
    time.sleep(0.3)
    assert metric(server, "ferry_llm_generation_tokens_total", SLOW) == before, "tokens are still being generated"


@pytest.mark.parametrize("how", ["rst", "fin"])
def test_sse_disconnect_stops_the_generation(slow_server, how):
    sock = open_sse(slow_server, "/v1/completions", LONG)
    try:
        assert metric(slow_server, "ferry_llm_num_requests_running", SLOW) == 1
        if how == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()
    generation_stops(slow_server)
    assert metric(slow_server, "ferry_llm_generation_tokens_total", SLOW) < 3000  # stopped early, not finished


def test_websocket_disconnect_stops_the_generation(slow_server):
    ws = ws_connect(slow_server)
    try:
        ws.send(json.dumps({"type": "generate", "id": "long", **{k: v for k, v in LONG.items() if k != "stream"}}))
        assert json.loads(ws.recv())["type"] == "token"
    finally:
        ws.close()
    generation_stops(slow_server)


def test_websocket_cancel_by_id(slow_server):
    ws = ws_connect(slow_server)
    try:
        ws.send(json.dumps({"type": "generate", "id": "g1", **{k: v for k, v in LONG.items() if k != "stream"}}))
        assert json.loads(ws.recv())["type"] == "token"
        ws.send(json.dumps({"type": "cancel", "id": "g1"}))
        while True:
            m = json.loads(ws.recv())
            if m["type"] == "done":
                break
        assert m["finish_reason"] == "cancelled"
        generation_stops(slow_server)
    finally:
        ws.close()


def test_streams_hold_their_models_concurrency_slots_until_they_end(slow_server):
    streams = [open_sse(slow_server, "/v1/completions", LONG) for _ in range(3)]
    try:
        short = {"model": SLOW, "prompt": "a", "max_tokens": 2}
        t0 = time.monotonic()
        status, headers, raw = post_json(slow_server, "/v1/completions", short, timeout=30)
        assert status == 503 and "limit of 3 concurrent requests" in json.loads(raw)["error"]["message"], raw
        assert int(headers["retry-after"]) >= 1 and time.monotonic() - t0 < 1.0
        streams.pop().close()  # one stream ends: its slot is free again
        assert wait_for(lambda: metric(slow_server, "ferry_llm_num_requests_running", SLOW) == 2, 2.0)
        status, _, raw = post_json(slow_server, "/v1/completions", short, timeout=30)
        assert status == 200, raw
    finally:
        for sock in streams:
            sock.close()
    generation_stops(slow_server)


def test_two_streams_progress_in_the_same_decode_steps(slow_server):
    def steps_by_width():
        buckets = {labels["le"]: v for labels, v in metric_samples(slow_server, "ferry_llm_decode_step_sequences_bucket")
                   if labels.get("model") == SLOW}
        return buckets["1"], buckets["+Inf"]
    single_before, all_before = steps_by_width()
    body = {**LONG, "max_tokens": 200}
    results = []

    def run():
        status, _, raw = post_json(slow_server, "/v1/completions", body, timeout=120)
        results.append((status, read_sse_events(raw)))
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in results] == [200, 200]
    single_after, all_after = steps_by_width()
    shared = (all_after - all_before) - (single_after - single_before)
    # 2 x 200 tokens: run one after the other they would take ~400 single-sequence steps.
    assert shared >= 150, f"{shared} of {all_after - all_before} decode steps held both streams"
    assert all_after - all_before <= 300
