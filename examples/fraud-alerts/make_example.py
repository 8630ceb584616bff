#!/usr/bin/env python3
"""The fraud-alerts example: trains the transaction-scoring model and picks its alert threshold.

    .venv/bin/python examples/fraud-alerts/make_example.py [--out examples/fraud-alerts]
                                                           [--rows 80000] [--trees 200]

Training data come from this file's generator (family A: card-not-present fraud far from home on a
new merchant, account-takeover bursts of transfers and gift cards, and a share of quiet fraud that
looks like the card's owner; 2% of transactions). The model
is judged elsewhere, on transactions from eval_family.py (family B, written separately: another
cardholder population and other fraud patterns: card testing, skimmed cards used in person, new
accounts), which it never saw.

Each transaction is what the authorisation pipeline knows when the card is swiped (`RAW_FIELDS`);
`features_of` (shared by both families: the pipeline, not the generator) turns it into the twelve
model features. The objective is binary:logistic, so the served output is the fraud probability.
The alert threshold is the one with the best F1 on a held-out fifth of family A; it is written to
<out>/alert_threshold.json, which the receiver reads.

Writes <out>/models/fraud_score/{config.yaml,1/model.json,1/reference/} and <out>/alert_threshold.json.
Deterministic: fixed seeds, one thread.
"""
import argparse
import json
import os
import sys

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from reference_samples import write_reference_samples  # noqa: E402

SEED = 20261215
MODEL = "fraud_score"
CATEGORIES = ["grocery", "fuel", "restaurant", "travel", "online_retail", "electronics", "gift_cards",
              "money_transfer"]
RAW_FIELDS = ["amount", "typical_amount", "hour", "secs_since_prev", "distance_km", "card_present",
              "foreign", "tx_last_24h", "new_merchant", "category", "account_age_days"]
FEATURES = ["log_amount", "log_amount_ratio", "hour_sin", "hour_cos", "log_secs_since_prev",
            "log_distance_km", "card_present", "foreign", "tx_last_24h", "new_merchant", "category",
            "log_account_age_days"]


def features_of(raw):
    """Feature rows (float32, one per transaction) from raw fields (a dict of equal-length arrays)."""
    angle = 2 * np.pi * raw["hour"] / 24.0
    cols = [np.log1p(raw["amount"]), np.log(raw["amount"] / raw["typical_amount"]),
            np.sin(angle), np.cos(angle), np.log1p(raw["secs_since_prev"]), np.log1p(raw["distance_km"]),
            raw["card_present"], raw["foreign"], raw["tx_last_24h"], raw["new_merchant"], raw["category"],
            np.log1p(raw["account_age_days"])]
    return np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1).astype(np.float32)


def _legit_a(rng, n):
    typical = rng.lognormal(3.6, 0.7, n)
    travelling = rng.random(n) < 0.05
    return {"amount": typical * rng.lognormal(0.0, 0.6, n), "typical_amount": typical,
            "hour": np.mod(rng.normal(14.0, 4.0, n), 24.0),
            "secs_since_prev": 60.0 + rng.exponential(10 * 3600.0, n),
            "distance_km": np.where(travelling, rng.lognormal(6.0, 1.0, n), rng.lognormal(1.5, 1.0, n)),
            "card_present": (rng.random(n) < 0.7).astype(float),
            "foreign": (rng.random(n) < np.where(travelling, 0.5, 0.02)).astype(float),
            "tx_last_24h": rng.poisson(2.5, n).astype(float),
            "new_merchant": (rng.random(n) < 0.25).astype(float),
            "category": rng.choice(8, n, p=[0.3, 0.12, 0.2, 0.04, 0.18, 0.06, 0.03, 0.07]).astype(float),
            "account_age_days": rng.uniform(60.0, 4000.0, n)}


def _stolen_card_a(rng, n):
    """Card details stolen and used online, far from home, on merchants the card never used."""
    typical = rng.lognormal(3.6, 0.7, n)
    return {"amount": typical * rng.lognormal(1.2, 0.7, n), "typical_amount": typical,
            "hour": rng.uniform(0.0, 24.0, n), "secs_since_prev": 60.0 + rng.exponential(2 * 3600.0, n),
            "distance_km": rng.lognormal(5.5, 1.2, n), "card_present": (rng.random(n) < 0.1).astype(float),
            "foreign": (rng.random(n) < 0.4).astype(float), "tx_last_24h": rng.poisson(4.0, n).astype(float),
            "new_merchant": (rng.random(n) < 0.9).astype(float),
            "category": rng.choice(8, n, p=[0.02, 0.02, 0.04, 0.22, 0.3, 0.3, 0.05, 0.05]).astype(float),
            "account_age_days": rng.uniform(60.0, 4000.0, n)}


def _takeover_a(rng, n):
    """An account taken over: a burst of transfers and gift cards from the owner's own region."""
    typical = rng.lognormal(3.6, 0.7, n)
    return {"amount": typical * rng.lognormal(0.5, 0.8, n), "typical_amount": typical,
            "hour": np.mod(rng.normal(22.0, 5.0, n), 24.0), "secs_since_prev": 10.0 + rng.exponential(300.0, n),
            "distance_km": rng.lognormal(2.0, 1.2, n), "card_present": np.zeros(n),
            "foreign": (rng.random(n) < 0.1).astype(float), "tx_last_24h": rng.poisson(9.0, n).astype(float),
            "new_merchant": (rng.random(n) < 0.7).astype(float),
            "category": rng.choice(8, n, p=[0.05, 0.0, 0.05, 0.0, 0.15, 0.1, 0.3, 0.35]).astype(float),
            "account_age_days": rng.uniform(60.0, 4000.0, n)}


def family_a(rng, n, fraud_rate=0.02):
    """(raw fields, labels) of n shuffled family-A transactions."""
    n_fraud = int(round(n * fraud_rate))
    n_stolen, n_quiet = int(round(n_fraud * 0.5)), int(round(n_fraud * 0.15))
    quiet = _legit_a(rng, n_quiet)  # fraud that looks like the owner, a little dearer: no model sees it
    quiet["amount"] *= 1.5
    parts = [_legit_a(rng, n - n_fraud), _stolen_card_a(rng, n_stolen), quiet,
             _takeover_a(rng, n_fraud - n_stolen - n_quiet)]
    raw = {k: np.concatenate([p[k] for p in parts]) for k in RAW_FIELDS}
    labels = np.concatenate([np.zeros(n - n_fraud), np.ones(n_fraud)])
    order = rng.permutation(n)
    return {k: v[order] for k, v in raw.items()}, labels[order]


def best_f1_threshold(scores, labels):
    """The score threshold (alert when score >= it) with the best F1, and its precision and recall."""
    order = np.argsort(-scores)
    hits = np.cumsum(labels[order])
    precision = hits / np.arange(1, len(scores) + 1)
    recall = hits / max(labels.sum(), 1)
    f1 = np.where(hits > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    best = int(np.argmax(f1))
    return float(scores[order][best]), float(precision[best]), float(recall[best])


def write_config(model_dir, comment):
    lines = ["# Written by examples/fraud-alerts/make_example.py; edit the script, not this file.",
             f"# {comment}",
             f"name: {MODEL}",
             "backend: xgboost",
             "platform: xgboost",
             "model_filename: model.json",
             "max_batch_size: 64",
             "inputs:",
             f"  - {{name: features, datatype: FP32, dims: [{len(FEATURES)}], columns: [{', '.join(FEATURES)}]}}",
             "outputs:",
             "  - {name: probability, datatype: FP32, dims: [1]}",
             "dynamic_batching: {max_queue_delay_us: 200, preferred_batch_sizes: [16, 64]}",
             "instance_group: {count: 1, threads: 1}",
             "max_queue_size: 256",
             "parameters: {output: probability}"]
    with open(os.path.join(model_dir, "config.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def train(out, rows, trees):
    """Trains on family A, writes the model, its reference samples and the alert threshold; returns the
    threshold's record."""
    raw, y = family_a(np.random.default_rng(SEED), rows)
    x = features_of(raw)
    cut = int(len(x) * 0.8)
    params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.1, "subsample": 0.9,
              "min_child_weight": 2, "nthread": 1, "seed": SEED, "tree_method": "hist", "eval_metric": "aucpr"}
    booster = xgb.train(params, xgb.DMatrix(x[:cut], label=y[:cut]), trees)
    model_dir = os.path.join(out, "models", MODEL)
    version_dir = os.path.join(model_dir, "1")
    os.makedirs(version_dir, exist_ok=True)
    booster.save_model(os.path.join(version_dir, "model.json"))
    saved = xgb.Booster(model_file=os.path.join(version_dir, "model.json"))
    saved.set_param({"nthread": 1})
    held_out = saved.predict(xgb.DMatrix(x[cut:]))
    threshold, precision, recall = best_f1_threshold(held_out, y[cut:])
    sample = x[:8]
    served = saved.predict(xgb.DMatrix(sample), strict_shape=True).astype(np.float32).reshape(8, 1)
    write_config(model_dir, f"binary:logistic, {trees} trees of depth <= 5, trained on {cut} transactions "
                            f"of family A ({int(y[:cut].sum())} frauds)")
    write_reference_samples(version_dir, [{"name": "s0", "inputs": [("features", sample)],
                                           "outputs": [("probability", served)]}],
                            tolerance=(1.0e-5, 1.0e-4), comment="examples/fraud-alerts/make_example.py",
                            framework="XGBoost 1.7.4")
    policy = {"model": MODEL, "threshold": round(threshold, 6),
              "chosen_on": f"best F1 on {len(x) - cut} held-out family-A transactions",
              "held_out_precision": round(precision, 4), "held_out_recall": round(recall, 4)}
    with open(os.path.join(out, "alert_threshold.json"), "w") as f:
        json.dump(policy, f, indent=2)
        f.write("\n")
    return policy


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--rows", type=int, default=80000)
    ap.add_argument("--trees", type=int, default=200)
    args = ap.parse_args()
    policy = train(args.out, args.rows, args.trees)
    print(f"{MODEL}: {args.rows} family-A transactions, {len(FEATURES)} features -> "
          f"{args.out}/models/{MODEL}/1/model.json; alert threshold {policy['threshold']:.4f} "
          f"(held-out A: precision {policy['held_out_precision']:.2f}, recall {policy['held_out_recall']:.2f})")


if __name__ == "__main__":
    main()
