#!/usr/bin/env python3
"""Replays today's sessions (eval_family.py's DIR/eval/sessions.jsonl) against a running server and
reports what hybrid serving did with them.

    replay.py --port P --work DIR [--readme FILE] [--table restaurant_lists] [--k 10]

Waits until the server is ready and the nightly table holds every known user. Then, over one kept-alive
HTTP connection, for each session in arrival order: POST /v2/models/restaurant_ranker/infer with the
user's feature row and `parameters.key` = the user id (known users are answered from the table, users
who signed up today by the model), then, in the restaurant the user ordered from, one
POST /v2/models/menu_ranker/infer per item added, with every candidate item as a row of the session's
context (always live). It prints, and writes into FILE between the <!-- figures --> markers:
  - the hit rate (answers from the table / restaurant requests) and p50/p99 latency of each source;
  - recall@k of the precomputed lists and of the live answers on the orders placed today, against
    the most-ordered restaurants and chance;
  - that a known user's table entry is what the model gives live for the same row;
  - hit@3 of the item ranking on the items added, against the "popular" badge and chance.
"""
import argparse
import http.client
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from example_report import write_figures  # noqa: E402
from make_example import catalog, item_rows  # noqa: E402

TABLE = "restaurant_lists"


class Client:
    """One kept-alive HTTP/1.1 connection; reconnects once when the server closed it."""

    def __init__(self, port, host="127.0.0.1"):
        self.host, self.port, self.conn = host, port, None

    def request(self, method, path, body=None):
        """(status, headers lower-cased, parsed JSON body, seconds)."""
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                start = time.perf_counter()
                self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                raw = resp.read()
                elapsed = time.perf_counter() - start
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            headers = {k.lower(): v for k, v in resp.getheaders()}
            if headers.get("connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            return resp.status, headers, json.loads(raw) if raw else None, elapsed

    def infer(self, model, input_name, rows, key=None):
        rows = np.asarray(rows, dtype=np.float32)
        body = {"inputs": [{"name": input_name, "datatype": "FP32", "shape": list(rows.shape),
                            "data": [float(v) for v in rows.ravel()]}]}
        if key is not None:
            body["parameters"] = {"key": key}
        status, headers, answer, elapsed = self.request("POST", f"/v2/models/{model}/infer", body)
        if status != 200:
            raise RuntimeError(f"{model} answered {status}: {answer}")
        return np.asarray(answer["outputs"][0]["data"], dtype=np.float32), headers.get("x-ferry-source"), elapsed


def wait_ready(client, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.request("GET", "/v2/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"the server on port {client.port} was not ready within {timeout_s} s")


def wait_table(client, table, entries, timeout_s=60):
    """The table's description once it holds `entries` keys."""
    deadline = time.monotonic() + timeout_s
    info = None
    while time.monotonic() < deadline:
        status, _, info, _ = client.request("GET", f"/v1/tables/{table}")
        if status == 200 and info.get("entries") == entries:
            return info
        time.sleep(0.2)
    sys.exit(f"table {table} does not hold {entries} entries within {timeout_s} s: {info}")


def load(work):
    with open(os.path.join(work, "eval", "meta.json")) as f:
        meta = json.load(f)
    with open(os.path.join(work, "eval", "sessions.jsonl")) as f:
        sessions = [json.loads(line) for line in f]
    return meta, sessions


def rank_restaurants(client, session, key=True):
    """(scores, source, seconds) of the user's restaurant list."""
    return client.infer("restaurant_ranker", "user", [session["features"]], key=session["user"] if key else None)


def rank_items(client, cat, session, step):
    """The candidate items of one basket step, best first, and the request's seconds."""
    rows = item_rows(cat, session["next"], step["candidates"], session["context"], step["basket"])
    scores, _, elapsed = client.infer("menu_ranker", "candidates", rows)
    return [step["candidates"][i] for i in np.argsort(-scores, kind="stable")], elapsed


def replay(client, meta, sessions, k):
    """Sends every session; per restaurant request (source, seconds, hit@k, known, the most-ordered
    k's hit), per item step (seconds, hit@3, the badge's hit@3, chance)."""
    cat = catalog(meta["restaurants"])
    popular = set(meta["popular"][:k])
    lists, items = [], []
    for s in sessions:
        scores, source, elapsed = rank_restaurants(client, s)
        top = np.argsort(-scores, kind="stable")[:k]
        lists.append((source, elapsed, s["next"] in top, s["known"], s["next"] in popular))
        for step in s["steps"]:
            ranked, elapsed = rank_items(client, cat, s, step)
            c = np.asarray(step["candidates"])
            badge = c[np.argsort(-cat.item_badge[s["next"], c], kind="stable")][:3]
            items.append((elapsed, step["chosen"] in ranked[:3], step["chosen"] in badge, 3 / len(c)))
    return lists, items


def parity(client, sessions, n=50):
    """The largest |table entry - live answer| over n known users' rows, and how many were compared."""
    worst, compared = 0.0, 0
    for s in [s for s in sessions if s["known"]][:n]:
        table, source, _ = rank_restaurants(client, s)
        live, live_source, _ = rank_restaurants(client, s, key=False)
        assert source == "precomputed" and live_source == "live", (s["user"], source, live_source)
        worst, compared = max(worst, float(np.max(np.abs(table - live)))), compared + 1
    return worst, compared


def ms(seconds, q):
    return 1000.0 * float(np.percentile(seconds, q))


def figures(meta, lists, items, worst, compared, k):
    n = meta["restaurants"]
    pre = [r for r in lists if r[0] == "precomputed"]
    live = [r for r in lists if r[0] == "live"]
    assert all(r[3] for r in pre) and not any(r[3] for r in live), "a known user went live or a new one hit"
    pop_known, pop_new = np.mean([r[4] for r in pre]), np.mean([r[4] for r in live])
    lines = [f"- restaurant requests: {len(lists)} ({meta['known']} known users, {meta['new']} signed up "
             f"today; users, orders and baskets of family B, never seen in training)",
             f"- hit rate: {len(pre) / len(lists):.1%} answered from the nightly table, the rest by the model",
             f"- latency over HTTP, precomputed: p50 {ms([r[1] for r in pre], 50):.2f} ms, "
             f"p99 {ms([r[1] for r in pre], 99):.2f} ms",
             f"- latency over HTTP, live: p50 {ms([r[1] for r in live], 50):.2f} ms, "
             f"p99 {ms([r[1] for r in live], 99):.2f} ms",
             f"- recall@{k} of today's orders, precomputed lists (known users): {np.mean([r[2] for r in pre]):.3f} "
             f"(most-ordered {k}: {pop_known:.3f}, chance: {k / n:.3f})",
             f"- recall@{k}, live answers (new users): {np.mean([r[2] for r in live]):.3f} "
             f"(most-ordered {k}: {pop_new:.3f}, chance: {k / n:.3f})",
             f"- table entry vs. live answer for the same row: max |difference| {worst:.2g} over {compared} "
             "known users",
             f"- items ranked in the session (menu_ranker, live, {len(items)} items added): hit@3 "
             f"{np.mean([r[1] for r in items]):.3f} (\"popular\" badge: {np.mean([r[2] for r in items]):.3f}, "
             f"chance: {np.mean([r[3] for r in items]):.3f}); p50 {ms([r[0] for r in items], 50):.2f} ms, "
             f"p99 {ms([r[0] for r in items], 99):.2f} ms"]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--readme")
    ap.add_argument("--table", default=TABLE)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    meta, sessions = load(args.work)
    client = Client(args.port)
    wait_ready(client)
    info = wait_table(client, args.table, meta["known"])
    print(f"table {args.table}: {info['entries']} entries from {info.get('source')}")
    for s in sessions[:20]:  # warm-up: connections, caches, the first predictions
        rank_restaurants(client, s)
    lists, items = replay(client, meta, sessions, args.k)
    worst, compared = parity(client, sessions)
    lines = figures(meta, lists, items, worst, compared, args.k)
    print("\n".join(lines))
    if args.readme:
        write_figures(args.readme, lines)


if __name__ == "__main__":
    main()
