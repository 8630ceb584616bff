"""Job status as Server-Sent Events (GET /v1/jobs/{id}/events), and jobs that carry OpenAI bodies for a
language model: the stream's framing and order, its end at the final state, a 404 for no job; chat and
completions jobs whose result is OpenAI's response; generation job bodies Ferry cannot run refused at
submit with a 4xx JSON error."""
from __future__ import annotations

import http.client
import json

import pytest

from test_jobs import call, job_body, wait_final

ORDER = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}


def read_events(server, path: str, timeout: float = 60.0) -> tuple[int, dict, list[tuple[str, str]]]:
    """Reads a whole event stream: (status, headers, [(event, data)]); comments are skipped."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        body = resp.read().decode()
    finally:
        conn.close()
    if resp.status != 200:
        return resp.status, headers, [("error", body)]
    events = []
    for block in body.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields.get("event", "message"), fields["data"]))
    return resp.status, headers, events


def test_a_job_event_stream_follows_the_job_to_its_end(ferry):
    _, _, job = call(ferry, "POST", "/v1/jobs", job_body())
    status, headers, events = read_events(ferry, f"/v1/jobs/{job['id']}/events")
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert events, "no event"
    states = []
    for name, data in events:
        assert name == "status"
        seen = json.loads(data)
        assert seen["id"] == job["id"]
        states.append(seen["status"])
    assert states[-1] == "succeeded", states
    assert [ORDER[s] for s in states] == sorted(ORDER[s] for s in states), states
    assert len(set(states)) == len(states), f"an unchanged job was sent twice: {states}"
    # A final job: one event, then the end.
    _, _, again = read_events(ferry, f"/v1/jobs/{job['id']}/events")
    assert [json.loads(d)["status"] for _, d in again] == ["succeeded"]


def test_events_of_an_unknown_job_are_a_404_json_error(ferry):
    status, _, events = read_events(ferry, "/v1/jobs/0123456789abcdef0123456789abcdef/events")
    assert status == 404
    assert "error" in json.loads(events[0][1])
    status, _, body = call(ferry, "POST", "/v1/jobs/0123456789abcdef0123456789abcdef/events")
    assert status == 405 and "error" in body


@pytest.mark.parametrize("request_body, kind", [
    ({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 12, "seed": 7}, "chat.completion"),
    ({"prompt": "The licence ", "max_tokens": 12, "seed": 7}, "text_completion"),
])
def test_generation_jobs_store_openai_responses(ferry, request_body, kind):
    status, _, job = call(ferry, "POST", "/v1/jobs",
                          json.dumps({"model": "tiny_llm", "request": request_body}).encode())
    assert status == 202, job
    done = wait_final(ferry, job["id"])
    assert done["status"] == "succeeded", done
    status, _, result = call(ferry, "GET", done["result_url"])
    assert status == 200, result
    assert result["object"] == kind and result["model"] == "tiny_llm"
    (choice,) = result["choices"]
    assert choice["finish_reason"] in ("length", "stop")
    assert result["usage"]["completion_tokens"] <= 12
    text = choice["message"]["content"] if kind == "chat.completion" else choice["text"]
    assert isinstance(text, str)


@pytest.mark.parametrize("model, request_body, fragment", [
    ("tiny_llm", {"prompt": "x", "stream": True}, "cannot stream"),
    ("identity", {"prompt": "x"}, "not a language model"),
    ("tiny_llm", {"messages": "hello"}, "messages"),
    ("tiny_llm", {"prompt": "x", "max_tokens": -2}, "max_tokens"),
    ("tiny_llm", {"prompt": "x", "logprobs": 2}, "logprobs"),
    ("no_such_model", {"prompt": "x"}, "no_such_model"),
])
def test_generation_jobs_ferry_cannot_run_are_refused_at_submit(ferry, model, request_body, fragment):
    status, _, body = call(ferry, "POST", "/v1/jobs", json.dumps({"model": model, "request": request_body}).encode())
    assert 400 <= status < 500, body
    assert fragment in body["error"], body
    assert ferry.get("/v2/health/live")[0] == 200
