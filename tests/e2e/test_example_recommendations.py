"""The food-delivery recommendations example (examples/recommendations/) in its small world.

make_example.py --small trains restaurant_ranker (24 restaurants) and menu_ranker on family A;
eval_family.py --small writes family B's known users (last night's export) and today's sessions. The
server serves them with the example's nightly schedule; a batch with `publish` (what the schedule
starts at 03:00) makes the table restaurant_lists. Then:
- every known user answers from the table, and the entry is what the model gives live for that row;
- a user who signed up today answers from the model, keyed or not, with the same scores;
- replayed over HTTP (replay.py's client), the precomputed lists and the live answers find today's
  order in their top 5 far more often than chance (and the lists more often than the most-ordered 5),
  and the live item ranking beats chance and the menu's "popular" badge.
"""
from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, FerryServer

EXAMPLE = ROOT / "examples" / "recommendations"


def load_replay():
    """The example's client (requests, ranking, the replay itself), imported from its folder without
    leaving it on sys.path or its module names (make_example: other examples have their own) in
    sys.modules."""
    names = ["make_example", "replay"]
    saved_modules = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    saved_path = list(sys.path)
    sys.path.insert(0, str(EXAMPLE))
    try:
        return importlib.import_module("replay")
    finally:
        sys.path[:] = saved_path
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved_modules)


replay = load_replay()
TABLE = "restaurant_lists"
K = 5


def run_script(*args: str) -> None:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def publish_batch(server: FerryServer) -> dict:
    body = {"model": "restaurant_ranker", "input": "known-users.csv", "publish": {"table": TABLE}}
    status, _, data = server.request("POST", "/v1/batches", json.dumps(body).encode(), timeout=30)
    assert status == 200, data
    batch = json.loads(data)
    deadline = time.monotonic() + 60
    while batch["status"] not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.1)
        batch = json.loads(server.get(f"/v1/batches/{batch['id']}")[2])
    assert batch["status"] == "completed", batch
    return batch


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommendations")
    run_script(str(EXAMPLE / "make_example.py"), "--small", "--out", str(root))
    run_script(str(EXAMPLE / "eval_family.py"), "--small", "--work", str(root / "work"))
    shutil.copytree(EXAMPLE / "models" / "schedules", root / "models" / "schedules")
    server = FerryServer(repo=root / "models", log_path=root / "ferry.log",
                         extra_args=["--batch-input-root", str(root / "work" / "in"),
                                     "--batch-output-root", str(root / "work" / "out"),
                                     "--data-dir", str(root / "data")])
    server.start()
    try:
        batch = publish_batch(server)
        meta, sessions = replay.load(str(root / "work"))
        client = replay.Client(server.port)
        yield {"server": server, "batch": batch, "meta": meta, "sessions": sessions, "client": client}
    finally:
        assert server.stop() == 0, server.log_text()


def test_the_batch_publishes_every_known_users_list_and_the_schedule_is_served(world):
    server, meta = world["server"], world["meta"]
    info = json.loads(server.get(f"/v1/tables/{TABLE}")[2])
    assert info["entries"] == meta["known"] == world["batch"]["request_counts"]["completed"]
    assert info["model"] == "restaurant_ranker" and info["source"] == world["batch"]["id"]
    status, _, data = server.get("/v1/schedules/nightly-restaurant-lists")
    schedule = json.loads(data)
    assert status == 200 and schedule["cron"] == "0 3 * * *", schedule


def test_known_users_answer_from_the_table_with_the_live_models_scores(world):
    client = world["client"]
    known = [s for s in world["sessions"] if s["known"]]
    assert len(known) == world["meta"]["known"]
    for s in known[::4]:
        scores, source, _ = replay.rank_restaurants(client, s)
        live, live_source, _ = replay.rank_restaurants(client, s, key=False)
        assert (source, live_source) == ("precomputed", "live"), s["user"]
        assert scores.shape == (world["meta"]["restaurants"],)
        np.testing.assert_allclose(scores, live, rtol=1e-5, atol=1e-6)
        assert abs(float(scores.sum()) - 1.0) < 1e-3  # softprob: a distribution over the restaurants
    status, headers, answer, _ = client.request("POST", "/v2/models/restaurant_ranker/infer", {
        "inputs": [{"name": "user", "datatype": "FP32", "shape": [1, len(known[0]["features"])],
                    "data": known[0]["features"]}], "parameters": {"key": known[0]["user"]}})
    assert status == 200 and headers["x-ferry-source"] == "precomputed"
    assert answer["parameters"]["ferry_source"] == "precomputed" and 0 <= answer["parameters"]["ferry_age_s"] < 600


def test_new_users_answer_from_the_model(world):
    client = world["client"]
    new = [s for s in world["sessions"] if not s["known"]]
    assert len(new) == world["meta"]["new"]
    for s in new[::3]:
        scores, source, _ = replay.rank_restaurants(client, s)
        live, _, _ = replay.rank_restaurants(client, s, key=False)
        assert source == "live", s["user"]
        np.testing.assert_allclose(scores, live, rtol=1e-6, atol=1e-7)


def test_both_kinds_of_answer_rank_todays_orders_far_above_chance(world):
    meta, sessions, client = world["meta"], world["sessions"], world["client"]
    lists, items = replay.replay(client, meta, sessions, K)
    chance = K / meta["restaurants"]
    pre = [r for r in lists if r[0] == "precomputed"]
    live = [r for r in lists if r[0] == "live"]
    assert len(pre) == meta["known"] and len(live) == meta["new"]
    recall_pre, recall_live = np.mean([r[2] for r in pre]), np.mean([r[2] for r in live])
    popular_pre = np.mean([r[4] for r in pre])
    assert recall_pre > 2 * chance and recall_pre > popular_pre + 0.1, (recall_pre, popular_pre, chance)
    assert recall_live > 1.6 * chance, (recall_live, chance)
    hit3, badge, item_chance = (np.mean([r[i] for r in items]) for i in (1, 2, 3))
    assert hit3 > item_chance + 0.15 and hit3 > badge, (hit3, badge, item_chance)
    lines = replay.figures(meta, lists, items, 0.0, 0, K)
    hit_rate = meta["known"] / (meta["known"] + meta["new"])
    assert any(line.startswith(f"- hit rate: {hit_rate:.1%}") for line in lines), lines
