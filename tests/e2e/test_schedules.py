"""Schedules (/v1/schedules, definition files) and folder triggers (/v1/triggers) against the binary.

- a trigger takes 50 files dropped into its folder (some written slowly under a hidden name, then
  renamed), with the server killed (SIGKILL) in the middle and files dropped while it is down: each
  file starts exactly one batch, whose output holds every record once; a file that is not valid input
  is refused with the reason, listed, and not retried after the restart;
- bad schedules: a malformed cron, an unknown time zone, an unknown model, an input outside the input
  root are 4xx JSON through the API and "refused" (logged, listed) from a definition file, while the
  other schedules keep running; a definition file's schedule cannot be deleted through the API;
- a schedule every minute fires in the server: one batch per slot, the slot's date in its output,
  the metrics counting it. (The clock-jump, restart and missed-slot cases run under an injected clock
  in tests/unit/schedules.)
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import ADMIN_KEY, FerryServer
from test_batches import call, identity_line, small_repo


def write_schedule(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)


def trigger_view(server: FerryServer, name: str) -> dict:
    status, body = call(server, "GET", f"/v1/triggers/{name}")
    assert status == 200, body
    return body


def wait_for(predicate, what: str, timeout: float = 120.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = predicate()
        if ok:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not after {timeout} s; last: {last}")


def all_batches(server: FerryServer) -> list[dict]:
    out, after = [], ""
    while True:
        status, page = call(server, "GET", f"/v1/batches?limit=100{'&after=' + after if after else ''}")
        assert status == 200, page
        out += page["data"]
        if not page["has_more"]:
            return out
        after = page["last_id"]


def drop(folder: Path, name: str, records: int, slow: bool) -> None:
    """Writes under a hidden name, then renames into place (slowly: in pieces, with pauses)."""
    lines = [identity_line(i, f"{name}-{i}") + "\n" for i in range(records)]
    tmp = folder / f".{name}.part"
    with open(tmp, "w") as f:
        for i, line in enumerate(lines):
            f.write(line)
            if slow and i % 3 == 0:
                f.flush()
                time.sleep(0.02)
    os.rename(tmp, folder / name)


@pytest.fixture
def roots(tmp_path):
    for sub in ("in/incoming", "out", "data/schedules"):
        (tmp_path / sub).mkdir(parents=True)
    return tmp_path


def server_for(roots: Path, *extra) -> FerryServer:
    return FerryServer(repo=small_repo(roots / f"models-{time.monotonic_ns()}"), log_path=roots / "ferry.log",
                       extra_args=["--batch-input-root", str(roots / "in"), "--batch-output-root", str(roots / "out"),
                                   "--data-dir", str(roots / "data"), "--trigger-rescan-secs", "0.5",
                                   "--admin-key", ADMIN_KEY, *extra])


def admin_call(server: FerryServer, method: str, path: str, body=None):
    """Making and deleting schedules is the operator's (they run batches as the server)."""
    return call(server, method, path, body, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


def test_a_trigger_takes_each_of_50_files_exactly_once_across_a_kill(roots):
    write_schedule(roots / "data" / "schedules", "incoming", """
watch: incoming
model: identity
output: triggered/{stem}.jsonl
""")
    folder = roots / "in" / "incoming"
    server = server_for(roots)
    server.start()
    names = [f"part-{i:02}.jsonl" for i in range(50)]
    try:
        for i, name in enumerate(names[:20]):
            drop(folder, name, 5 + i % 7, slow=i % 4 == 0)
        (folder / "bad.csv").write_text("not_an_input\n1\n")  # valid CSV, no column the model takes
        # The server is killed with files in flight: some taken, some not yet.
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        for i, name in enumerate(names[20:30], start=20):
            drop(folder, name, 5 + i % 7, slow=False)
        server.stopped = False
        server.start()
        for i, name in enumerate(names[30:], start=30):
            drop(folder, name, 5 + i % 7, slow=i % 4 == 0)
        view = wait_for(lambda: ((v := trigger_view(server, "incoming"))["files"]["completed"] == 50, v),
                        "every file's batch completed")
        assert view["files"]["refused"] == 1, view
        assert view["files"]["total"] == 51, view
        [failure] = view["failures"]
        assert failure["file"] == "bad.csv" and failure["outcome"] == "refused", failure
        assert "not_an_input" in failure["error"] or "INPUT0" in failure["error"], failure
        # One batch per file, never two.
        by_file: dict[str, int] = {}
        for b in all_batches(server):
            if (b.get("metadata") or {}).get("trigger") == "incoming":
                by_file[b["metadata"]["file"]] = by_file.get(b["metadata"]["file"], 0) + 1
        assert by_file == {name: 1 for name in names}, by_file
        for i, name in enumerate(names):
            out = roots / "out" / "triggered" / f"{Path(name).stem}.jsonl"
            ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
            assert ids == [f"{name}-{k}" for k in range(5 + i % 7)], (name, ids)
        status, metrics = call(server, "GET", "/metrics")
        text = metrics.decode() if isinstance(metrics, bytes) else metrics
        assert 'ferry_trigger_files_total{outcome="refused",trigger="incoming"}' in text
    finally:
        if server.alive():
            assert server.stop() == 0, server.log_text()
    # After a clean restart nothing runs again, the refused file included.
    again = server_for(roots)
    again.start()
    try:
        time.sleep(1.5)  # three rescans
        view = trigger_view(again, "incoming")
        assert view["files"]["total"] == 51 and view["files"]["refused"] == 1, view
        assert len([b for b in all_batches(again) if (b.get("metadata") or {}).get("trigger")]) == 50
    finally:
        assert again.stop() == 0, again.log_text()


def test_bad_schedules_are_refused_and_the_others_run(roots):
    (roots / "in" / "daily").mkdir()
    schedules = roots / "data" / "schedules"
    write_schedule(schedules, "good", 'cron: "0 3 * * *"\ntime_zone: Europe/Berlin\nmodel: identity\n'
                                      'input: daily/{date}.jsonl\n')
    write_schedule(schedules, "bad-cron", 'cron: "0 25 * * *"\nmodel: identity\ninput: daily/{date}.jsonl\n')
    write_schedule(schedules, "bad-zone", 'cron: "@daily"\ntime_zone: Mars/Olympus\nmodel: identity\n'
                                          'input: daily/{date}.jsonl\n')
    write_schedule(schedules, "bad-yaml", 'cron: [unclosed\n')
    server = server_for(roots)
    server.start()
    try:
        status, listing = call(server, "GET", "/v1/schedules")
        assert status == 200, listing
        assert [s["name"] for s in listing["data"]] == ["good"], listing
        refused = {r["name"]: r["error"] for r in listing["refused"]}
        assert "hour 25 is outside 0..23" in refused["bad-cron"], refused
        assert "unknown time zone 'Mars/Olympus'" in refused["bad-zone"], refused
        assert "YAML" in refused["bad-yaml"], refused
        good = listing["data"][0]
        assert good["next_run_at_local"].endswith("T03:00") and good["source"] == "file", good
        assert good["next_run_at"] > time.time()
        base = {"name": "api", "cron": "*/5 * * * *", "model": "identity", "input": "daily/{date}.jsonl"}
        cases = [
            ({**base, "cron": "61 * * * *"}, 400, "minute 61"),
            ({**base, "cron": "* * *"}, 400, "5 fields"),
            ({**base, "time_zone": "Nowhere/City"}, 400, "unknown time zone"),
            ({**base, "model": "nope"}, 404, "nope"),
            ({**base, "input": "../outside/{date}.jsonl"}, 403, ".."),
            ({**base, "input": "/etc/{date}.jsonl"}, 403, "outside the input root"),
            ({**base, "missed": "sometimes"}, 400, "missed"),
            ({**base, "name": "good"}, 409, "exists"),
            ({**base, "watch": "x"}, 400, "triggers"),
            ({**base, "colour": "red"}, 400, "unknown key"),
            ({**base, "input": {"nested": 1}}, 400, "must be a string"),
        ]
        for body, code, says in cases:
            status, err = admin_call(server, "POST", "/v1/schedules", body)
            assert status == code, (body, status, err)
            assert call(server, "POST", "/v1/schedules", body)[0] == 401  # without the admin key
            assert says in err["error"], (body, err)
        status, err = admin_call(server, "POST", "/v1/schedules", b"{broken")
        assert status == 400 and "error" in err
        status, made = admin_call(server, "POST", "/v1/schedules", {**base, "time_zone": "Asia/Kolkata", "missed": "run_once"})
        assert status == 200, made
        assert made["source"] == "api" and made["missed"] == "run_once" and made["time_zone"] == "Asia/Kolkata"
        status, err = admin_call(server, "DELETE", "/v1/schedules/good")
        assert status == 400 and "definition file" in err["error"], err
        assert call(server, "GET", "/v1/schedules/api")[0] == 200
    finally:
        assert server.stop() == 0, server.log_text()
    # The API's schedule survives a restart; then it can be deleted.
    again = server_for(roots)
    again.start()
    try:
        status, got = call(again, "GET", "/v1/schedules/api")
        assert status == 200 and got["cron"] == "*/5 * * * *", got
        assert admin_call(again, "DELETE", "/v1/schedules/api")[0] == 200
        assert call(again, "GET", "/v1/schedules/api")[0] == 404
        assert admin_call(again, "DELETE", "/v1/schedules/api")[0] == 404
    finally:
        assert again.stop() == 0, again.log_text()


def test_a_schedule_every_minute_fires_one_batch_per_slot(roots):
    (roots / "in" / "feed").mkdir()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    for day in (today, tomorrow):  # the slot may fall after midnight
        with open(roots / "in" / "feed" / f"{day}.jsonl", "w") as f:
            for i in range(20):
                f.write(identity_line(i, f"r{i}") + "\n")
    write_schedule(roots / "data" / "schedules", "minutely",
                   'cron: "* * * * *"\nmodel: identity\ninput: feed/{date}.jsonl\noutput: scheduled/{date}-{time}.jsonl\n')
    server = server_for(roots)
    server.start()
    try:
        first = wait_for(lambda: ((s := call(server, "GET", "/v1/schedules/minutely")[1])["fires"] >= 1, s),
                         "the first slot fired", timeout=75, every=0.25)
        assert first["misses"] == 0 and first["skips"] == 0, first
        [batch_id] = first["last_batches"]
        status, batch = call(server, "GET", f"/v1/batches/{batch_id}")
        assert status == 200 and batch["metadata"]["schedule"] == "minutely", batch
        done = wait_for(lambda: ((b := call(server, "GET", f"/v1/batches/{batch_id}")[1])["status"] == "completed", b),
                        "the slot's batch completed")
        assert done["request_counts"]["completed"] == 20, done
        out = Path(done["output"])
        assert out.parent == roots / "out" / "scheduled" and out.name[:10] in (today, tomorrow), out
        assert first["next_run_at"] == first["last_fired_at"] + 60, first
        status, metrics = call(server, "GET", "/metrics")
        text = metrics.decode() if isinstance(metrics, bytes) else metrics
        assert 'ferry_schedule_slots_total{outcome="fired",schedule="minutely"}' in text
        assert 'ferry_schedule_next_run_timestamp_seconds{schedule="minutely"}' in text
    finally:
        assert server.stop() == 0, server.log_text()


def test_the_forecasting_example_loads_and_schedules_its_weekly_run(tmp_path):
    """examples/forecasting as served: the model passes its reference check, the weekly schedule is
    read from the repository's schedules/ and its next run is a Monday at 06:00 in Berlin."""
    import shutil
    from conftest import ROOT
    repo = tmp_path / "models"
    shutil.copytree(ROOT / "examples" / "forecasting" / "models", repo)
    (tmp_path / "in" / "stores").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    server = FerryServer(repo=repo, log_path=tmp_path / "ferry.log",
                         extra_args=["--batch-input-root", str(tmp_path / "in"),
                                     "--batch-output-root", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data")])
    server.start()
    try:
        status, listing = call(server, "GET", "/v1/schedules")
        assert status == 200 and listing["refused"] == [], listing
        [weekly] = listing["data"]
        assert weekly["name"] == "weekly-forecast" and weekly["time_zone"] == "Europe/Berlin", weekly
        assert weekly["next_run_at_local"].endswith("T06:00"), weekly
        day = time.strptime(weekly["next_run_at_local"][:10], "%Y-%m-%d")
        assert day.tm_wday == 0, weekly  # a Monday
    finally:
        assert server.stop() == 0, server.log_text()


def test_the_sentiment_example_takes_raw_text_and_schedules_its_nightly_run(tmp_path):
    """examples/feedback-sentiment as served: raw review text in (the config's text preprocess), the
    classes out, online and from a CSV batch; the nightly schedule read from the repository."""
    import shutil
    from conftest import ROOT
    repo = tmp_path / "models"
    shutil.copytree(ROOT / "examples" / "feedback-sentiment" / "models", repo)
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "in" / "reviews.csv").write_text(
        'id,review\na,"Delivery was really great!"\nb,"The packaging was terrible."\nc,""\n')
    server = FerryServer(repo=repo, log_path=tmp_path / "ferry.log",
                         extra_args=["--batch-input-root", str(tmp_path / "in"),
                                     "--batch-output-root", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data")])
    server.start()
    try:
        texts = ["Customer support was excellent", "The battery is awful and broken"]
        status, out = call(server, "POST", "/v2/models/feedback_sentiment/infer", {"inputs": [
            {"name": "review", "shape": [2, 1], "datatype": "BYTES", "data": texts}]})
        assert status == 200, out
        [probs] = out["outputs"]
        assert probs["shape"] == [2, 2], probs
        assert probs["data"][1] > 0.5 > probs["data"][3], probs  # positive first, negative second
        status, batch = call(server, "POST", "/v1/batches",
                             {"model": "feedback_sentiment", "input": "reviews.csv", "output": "scored.csv"})
        assert status == 200, batch
        done = wait_for(lambda: ((b := call(server, "GET", f"/v1/batches/{batch['id']}")[1])["status"] == "completed",
                                 b), "the CSV batch completed")
        assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}, done
        lines = (tmp_path / "out" / "scored.csv").read_text().splitlines()
        assert lines[0] == "id,probabilities_0,probabilities_1" and len(lines) == 4, lines
        status, listing = call(server, "GET", "/v1/schedules")
        assert [s["name"] for s in listing["data"]] == ["nightly-sentiment"] and listing["refused"] == [], listing
    finally:
        assert server.stop() == 0, server.log_text()
