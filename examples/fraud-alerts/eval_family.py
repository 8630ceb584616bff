#!/usr/bin/env python3
"""The fraud-alerts example's evaluation family (B), written apart from the training generator (A,
make_example.py) so that the model is judged on transactions it was not made from:

  - the cardholders differ: more online shopping (45% card present), lower and more spread typical
    amounts, evening peaks, commuters, more travel, newer accounts, overdispersed daily counts;
  - the fraud differs: card testing (bursts of tiny amounts, then a cash-out), skimmed cards used in
    person at night not far from home, and fraud on accounts days old; none of it is family A's.

    eval_family.py inputs --work DIR [--count N] [--fraud-rate R]
                          writes DIR/transactions.jsonl: one line per transaction, {"id", "features",
                          "label", "rule"} (rule: whether the naive rule would alert)
    eval_family.py report --work DIR [--readme FILE]
                          precision and recall at the alert threshold, of the model (from the alerts the
                          receiver logged) and of the naive rule and random alerting; submit-to-alert
                          latency p50/p99; writes the figures into FILE between its <!-- figures --> marks
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (HERE, os.path.dirname(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
from example_report import write_figures  # noqa: E402
from make_example import RAW_FIELDS, features_of  # noqa: E402  (the pipeline, shared; not the generator)

SEED = 4242
COUNT = 3000
FRAUD_RATE = 0.03
RULE = "alert when the amount is >= 5x the card's typical amount, or card-not-present + foreign + new merchant"


def _cardholders_b(rng, n):
    typical = rng.lognormal(3.2, 0.9, n)
    travelling = rng.random(n) < 0.08
    evening = rng.random(n) < 0.4
    daily = rng.negative_binomial(2, 0.4, n)  # mean 3, overdispersed
    return {"amount": typical * np.exp(0.5 * rng.standard_t(5, n)), "typical_amount": typical,
            "hour": np.mod(np.where(evening, rng.normal(20.0, 2.0, n), rng.normal(12.0, 3.0, n)), 24.0),
            "secs_since_prev": 30.0 + rng.gamma(0.7, 12 * 3600.0, n),
            "distance_km": np.where(travelling, rng.lognormal(5.5, 1.3, n), rng.lognormal(2.0, 1.1, n)),
            "card_present": (rng.random(n) < 0.45).astype(float),
            "foreign": (rng.random(n) < np.where(travelling, 0.6, 0.03)).astype(float),
            "tx_last_24h": daily.astype(float), "new_merchant": (rng.random(n) < 0.35).astype(float),
            "category": rng.choice(8, n, p=[0.22, 0.08, 0.18, 0.07, 0.27, 0.08, 0.04, 0.06]).astype(float),
            "account_age_days": 30.0 + rng.exponential(900.0, n)}


def _card_testing(rng, n):
    """Stolen numbers tried with tiny amounts in a burst, then a cash-out at a transfer service."""
    raw = _cardholders_b(rng, n)
    cash_out = rng.random(n) < 0.5
    raw["amount"] = np.where(cash_out, raw["typical_amount"] * rng.lognormal(1.0, 0.6, n), rng.uniform(0.5, 3.0, n))
    raw["secs_since_prev"] = rng.lognormal(4.0, 1.0, n)
    raw["tx_last_24h"] = rng.integers(6, 21, n).astype(float)
    raw["card_present"] = np.zeros(n)
    raw["new_merchant"] = (rng.random(n) < 0.8).astype(float)
    raw["category"] = np.where(cash_out, 7.0, rng.choice([4.0, 6.0], n))
    return raw


def _skimmed(rng, n):
    """A copied card used in person, at night, some tens of kilometres away, on electronics or fuel."""
    raw = _cardholders_b(rng, n)
    raw["card_present"] = np.ones(n)
    raw["hour"] = rng.uniform(0.0, 5.0, n)
    raw["distance_km"] = rng.lognormal(3.5, 1.0, n)
    raw["amount"] = raw["typical_amount"] * rng.lognormal(1.5, 0.6, n)
    raw["new_merchant"] = (rng.random(n) < 0.8).astype(float)
    raw["category"] = rng.choice([1.0, 5.0], n, p=[0.4, 0.6])
    raw["foreign"] = np.zeros(n)
    return raw


def _new_account(rng, n):
    """An account opened days ago with stolen identity papers, spent online at once."""
    raw = _cardholders_b(rng, n)
    raw["account_age_days"] = rng.uniform(1.0, 30.0, n)
    raw["amount"] = raw["typical_amount"] * rng.lognormal(1.0, 0.8, n)
    raw["card_present"] = (rng.random(n) < 0.1).astype(float)
    raw["foreign"] = (rng.random(n) < 0.2).astype(float)
    raw["distance_km"] = rng.lognormal(4.0, 1.5, n)
    raw["new_merchant"] = np.ones(n)
    raw["category"] = rng.choice([3.0, 4.0, 5.0, 6.0], n)
    return raw


KINDS = ["legit", "card_testing", "skimmed", "new_account"]


def family_b(rng, n, fraud_rate=FRAUD_RATE):
    """(raw fields, labels, kinds: index into KINDS) of n shuffled family-B transactions."""
    n_fraud = max(1, int(round(n * fraud_rate)))
    sizes = [int(round(n_fraud * 0.35)), int(round(n_fraud * 0.3))]
    sizes.append(n_fraud - sum(sizes))
    parts = [_cardholders_b(rng, n - n_fraud), _card_testing(rng, sizes[0]), _skimmed(rng, sizes[1]),
             _new_account(rng, sizes[2])]
    raw = {k: np.concatenate([p[k] for p in parts]) for k in RAW_FIELDS}
    kinds = np.concatenate([np.full(size, i) for i, size in enumerate([n - n_fraud, *sizes])])
    order = rng.permutation(n)
    return {k: v[order] for k, v in raw.items()}, (kinds[order] > 0).astype(float), kinds[order]


def naive_rule(raw):
    ratio = raw["amount"] / raw["typical_amount"]
    return (ratio >= 5.0) | ((raw["card_present"] == 0) & (raw["foreign"] == 1) & (raw["new_merchant"] == 1))


def write_transactions(path, count=COUNT, fraud_rate=FRAUD_RATE, seed=SEED):
    """Writes family B's transactions as JSON lines; returns them as dicts."""
    raw, labels, kinds = family_b(np.random.default_rng(seed), count, fraud_rate)
    x, rule = features_of(raw), naive_rule(raw)
    rows = [{"id": f"tx-{i:06}", "features": [float(v) for v in x[i]], "label": int(labels[i]),
             "kind": KINDS[kinds[i]], "rule": bool(rule[i])} for i in range(count)]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return rows


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def precision_recall(alerted, labels):
    alerted, labels = np.asarray(alerted, bool), np.asarray(labels, bool)
    hits = int((alerted & labels).sum())
    return hits / max(int(alerted.sum()), 1), hits / max(int(labels.sum()), 1), int(alerted.sum())


def score(transactions, received, threshold):
    """Model, rule and random-alert figures; `received`: the receiver's log (one line per webhook-id)."""
    by_tx = {r["tx"]: r for r in received}
    missing = [t["id"] for t in transactions if t["id"] not in by_tx]
    assert not missing, f"{len(missing)} transactions without a webhook, e.g. {missing[:3]}"
    unscored = [r["tx"] for r in received if r["score"] is None]
    assert not unscored, f"{len(unscored)} jobs did not succeed, e.g. {unscored[:3]}"
    labels = [t["label"] for t in transactions]
    model = precision_recall([by_tx[t["id"]]["score"] >= threshold for t in transactions], labels)
    rule = precision_recall([t["rule"] for t in transactions], labels)
    caught = {kind: (sum(by_tx[t["id"]]["score"] >= threshold for t in transactions if t["kind"] == kind),
                     sum(t["kind"] == kind for t in transactions)) for kind in KINDS[1:]}
    return {"n": len(transactions), "frauds": int(sum(labels)), "base_rate": sum(labels) / len(labels),
            "model": model, "rule": rule, "caught": caught}


def latencies(submitted, received, threshold):
    """Submit-to-webhook seconds for every job and for the alerts alone (client clock at the POST,
    receiver clock at arrival: one machine)."""
    sent = {s["tx"]: s["submitted_at"] for s in submitted}
    every = np.array([r["received_at"] - sent[r["tx"]] for r in received])
    alerts = np.array([r["received_at"] - sent[r["tx"]] for r in received if r["score"] >= threshold])
    return every, alerts


def figure_lines(s, every, alerts, threshold, meta):
    (mp, mr, mn), (rp, rr, rn) = s["model"], s["rule"]

    def ms(a, q):
        return f"{np.percentile(a, q) * 1000:.0f} ms" if len(a) else "n/a"
    return [f"- transactions scored: {s['n']:,} of family B (never seen in training), {s['frauds']} frauds "
            f"(base rate {s['base_rate'] * 100:.1f}%), one job each with a webhook",
            f"- alert threshold {threshold:.3f} (best F1 on held-out family A)",
            f"- fraud_score: {mn} alerts, precision {mp:.2f}, recall {mr:.2f} (caught: "
            + ", ".join(f"{kind.replace('_', ' ')} {c}/{total}" for kind, (c, total) in s["caught"].items()) + ")",
            f"- naive rule ({RULE}): {rn} alerts, precision {rp:.2f}, recall {rr:.2f}",
            f"- random alerts at the model's alert rate: precision {s['base_rate']:.2f} (the base rate), "
            f"recall {mn / s['n']:.2f}",
            f"- submit-to-webhook latency, all {len(every):,} jobs: p50 {ms(every, 50)}, p99 {ms(every, 99)}",
            f"- submit-to-alert latency, the {len(alerts)} alerts: p50 {ms(alerts, 50)}, p99 {ms(alerts, 99)}",
            f"- submitted at {meta.get('rate', 0):.0f} transactions/s by {meta.get('concurrency', 0)} client "
            f"threads; server `--job-concurrency {meta.get('job_concurrency', '?')}`; webhooks with a bad "
            f"signature refused: {meta.get('forged_refused', '?')}; duplicates dropped: "
            f"{meta.get('duplicates', 0)} (this machine)"]


def report(work, readme=None):
    policy = json.load(open(os.path.join(work, "alert_threshold.json")))
    transactions = read_jsonl(os.path.join(work, "transactions.jsonl"))
    received = read_jsonl(os.path.join(work, "received.jsonl"))
    submitted = read_jsonl(os.path.join(work, "submitted.jsonl"))
    meta = json.load(open(os.path.join(work, "client.json")))
    s = score(transactions, received, policy["threshold"])
    every, alerts = latencies(submitted, received, policy["threshold"])
    lines = figure_lines(s, every, alerts, policy["threshold"], meta)
    print("\n".join(lines))
    if readme:
        write_figures(readme, lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["inputs", "report"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--count", type=int, default=COUNT)
    ap.add_argument("--fraud-rate", type=float, default=FRAUD_RATE)
    ap.add_argument("--readme")
    args = ap.parse_args()
    if args.command == "inputs":
        rows = write_transactions(os.path.join(args.work, "transactions.jsonl"), args.count, args.fraud_rate)
        print(f"family B: {len(rows)} transactions, {sum(r['label'] for r in rows)} frauds -> "
              f"{args.work}/transactions.jsonl")
    else:
        report(args.work, args.readme)


if __name__ == "__main__":
    main()
