#!/usr/bin/env python3
"""Trains Ferry's XGBoost example models on synthetic data and writes them with their reference samples.

Run with the project's virtual environment (scripts/setup-python.sh installs xgboost 1.7.4 from
tools/requirements.txt, the version of Debian's libxgboost the server links):

    .venv/bin/python tools/make_xgboost_models.py [--out examples/models] [--ref-out tools/reference]
                                                  [--report tools/data/xgboost_report.json]

Deterministic: fixed seeds, one training thread, no clock. The data are made here, never downloaded.
Each model is judged on held-out rows it never saw (printed, and written to the report):

  fraud_xgb    card transactions -> fraud probability. binary:logistic, 12 features with missing values
               (NaN), about 6% positives; judged by ROC AUC and log loss on a 30% test split, beside the AUC of
               the probability the data were drawn from (the best any model can do).
               model.json, output `probability` [1], parameters {output: probability}.
  segment_xgb  customer features -> one of 4 segments. multi:softprob, 8 features, some missing; judged
               by accuracy on a 30% test split. model.ubj (UBJSON), output `probabilities` [4].
  demand_xgb   store-day features (calendar, price, promotion, lagged sales) -> units sold.
               reg:squarederror; judged on the last 20% of days (a forecast never sees its future)
               against the seasonal-naive forecast (the sales of 7 days before). model.json, output
               `units` [1].

Written for each model:
  <out>/<name>/config.yaml, <out>/<name>/1/model.{json,ubj}
  <out>/<name>/1/reference/   reference samples (8 test rows, some features NaN, and XGBoost's own
                              predictions), checked by Ferry at every load within 1e-6
  <ref-out>/xgboost_<name>.json  32 test rows (NaN written as null) with XGBoost's `prediction` and
                              `margin` (output_margin=True) for each, for the C++ unit tests
and the seed corpus of the model-file fuzzer (tests/fuzz/xgboost_model_fuzz.cc): tiny models of each
booster and format, each file its format's letter ('j' or 'u') and then the model (--fuzz-out).
"""
import argparse
import json
import os
import sys

import numpy as np
import xgboost as xgb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_samples import write_reference_samples, yaml_dims  # noqa: E402

SEED = 20240917
REFERENCE_TOLERANCE = (1.0e-6, 0.0)  # XGBoost's own numbers: the same library version, the same trees
WRITTEN_BY = "tools/make_xgboost_models.py"

# ------------------------------------------------------------------------------------------------ data


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def with_missing(rng, x, columns, fraction):
    x = x.copy()
    for c in columns:
        x[rng.random(len(x)) < fraction, c] = np.nan
    return x


def fraud_data(rng, n):
    """Transactions: risk rises at night, abroad, on new devices, with card-not-present, far from home,
    with many recent transactions and amounts far above the customer's usual."""
    hour = rng.integers(0, 24, n)
    amount_log = rng.normal(3.5, 1.2, n)
    merchant_risk = rng.beta(2, 8, n)
    distance_log = np.log1p(rng.exponential(20.0, n))
    card_present = (rng.random(n) < 0.7).astype(float)
    tx_last_hour = rng.poisson(0.5, n).astype(float)
    account_age_log = np.log1p(rng.uniform(0, 3650, n))
    foreign = (rng.random(n) < 0.1).astype(float)
    amount_ratio_log = rng.normal(0.0, 0.5, n)
    failed_pins = rng.poisson(0.05, n).astype(float)
    new_device = (rng.random(n) < 0.08).astype(float)
    velocity = rng.gamma(2.0, 30.0, n)
    night = ((hour <= 5) | (hour >= 23)).astype(float)
    logit = (-6.2 + 5.0 * merchant_risk + 0.9 * night + 0.8 * foreign + 1.2 * new_device
             + 0.8 * (1 - card_present) + 0.35 * distance_log + 0.45 * tx_last_hour
             - 0.25 * (account_age_log - 6.0) + 1.1 * np.maximum(amount_ratio_log, 0) + 0.9 * failed_pins
             + 1.0 * foreign * night + 0.006 * np.maximum(velocity - 120, 0))
    truth = sigmoid(logit)
    y = (rng.random(n) < truth).astype(np.float32)
    x = np.stack([amount_log, hour, merchant_risk, distance_log, card_present, tx_last_hour, account_age_log,
                  foreign, amount_ratio_log, failed_pins, new_device, velocity], axis=1).astype(np.float32)
    x = with_missing(rng, x, [3, 8], 0.05)
    x[(card_present == 1) & (rng.random(n) < 0.6), 11] = np.nan  # velocity needs a previous location
    return x, y, truth


def segment_data(rng, n):
    """Four customer segments around their own centres, with one nonlinear boundary and missing values."""
    centres = rng.normal(0.0, 1.2, (4, 8))
    y = rng.integers(0, 4, n)
    x = centres[y] + rng.normal(0.0, 1.0, (n, 8))
    flip = (y == 3) & (x[:, 0] * x[:, 1] > 1.0)  # part of segment 3 looks like segment 2
    y = np.where(flip, 2, y)
    x = with_missing(rng, x.astype(np.float32), [2, 5], 0.1)
    return x, y.astype(np.float32)


def demand_data(rng, stores=24, days=3 * 365):
    """Daily units per store: weekly and yearly seasons, price elasticity, promotions and holidays,
    as features the calendar and the sales history give (lags of 7 and 14 days, a 28-day mean)."""
    rows, targets, day_index = [], [], []
    for s in range(stores):
        size = rng.uniform(0.5, 2.0)
        t = np.arange(days + 28)
        dow = t % 7
        doy = t % 365
        price = 10.0 * rng.uniform(0.85, 1.15, len(t))
        promo = (rng.random(len(t)) < 0.12).astype(float)
        holiday = np.isin(doy, [0, 1, 120, 185, 300, 358, 359, 360]).astype(float)
        weekly = np.array([0.9, 0.85, 0.9, 1.0, 1.15, 1.35, 1.05])[dow]
        yearly = 1.0 + 0.25 * np.sin(2 * np.pi * (doy - 80) / 365)
        mean = 40 * size * weekly * yearly * (price / 10.0) ** -1.6 * (1 + 0.45 * promo) * (1 + 0.6 * holiday)
        units = rng.poisson(mean).astype(float)
        for d in range(28, len(t)):
            rows.append([dow[d], np.sin(2 * np.pi * doy[d] / 365), np.cos(2 * np.pi * doy[d] / 365), price[d],
                         promo[d], holiday[d], units[d - 7], units[d - 14], units[d - 28:d].mean(), size])
            targets.append(units[d])
            day_index.append(d)
    return (np.array(rows, dtype=np.float32), np.array(targets, dtype=np.float32), np.array(day_index))


# --------------------------------------------------------------------------------------------- metrics


def roc_auc(y, p):
    """The probability that a random positive scores above a random negative (ties count half)."""
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sorted_p = p[order]
    i = 0
    while i < len(p):  # average ranks over ties
        j = i
        while j + 1 < len(p) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


# ----------------------------------------------------------------------------------------------- write


def write_config(model_dir, name, filename, features, output, values, parameters, comment):
    lines = [f"# Written by {WRITTEN_BY}; edit the script, not this file.",
             f"# {comment}",
             f"name: {name}",
             "backend: xgboost",
             "platform: xgboost",
             f"model_filename: {filename}",
             "max_batch_size: 64",
             "inputs:",
             f"  - {{name: features, datatype: FP32, dims: [{features}]}}",
             "outputs:",
             f"  - {{name: {output}, datatype: FP32, dims: [{values}]}}",
             "dynamic_batching: {max_queue_delay_us: 200, preferred_batch_sizes: [16, 64]}",
             "instance_group: {count: 1, threads: 1}",
             "max_queue_size: 256"]
    if parameters:
        lines.append("parameters: {" + ", ".join(f"{k}: {v}" for k, v in parameters.items()) + "}")
    with open(os.path.join(model_dir, "config.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def json_rows(a):
    return [[None if np.isnan(v) else float(v) for v in row] for row in a]


def save_model(booster, args, name, filename, x_test, output, output_kind, comment):
    """Writes the model, its config, its reference samples and the unit tests' JSON reference."""
    model_dir = os.path.join(args.out, name)
    version_dir = os.path.join(model_dir, "1")
    os.makedirs(version_dir, exist_ok=True)
    for old in ("model.json", "model.ubj"):
        if os.path.exists(os.path.join(version_dir, old)):
            os.remove(os.path.join(version_dir, old))
    booster.save_model(os.path.join(version_dir, filename))
    # What is served is what the file holds: predict from the saved file, not the booster in memory.
    saved = xgb.Booster(model_file=os.path.join(version_dir, filename))
    saved.set_param({"nthread": 1})

    def predict(rows, margin=False):
        out = saved.predict(xgb.DMatrix(rows, missing=np.nan), output_margin=margin, strict_shape=True)
        return out.astype(np.float32).reshape(len(rows), -1)

    sample = x_test[:8].copy()
    sample[7, :] = np.nan  # a row with nothing known: the trees' default directions all the way
    served = predict(sample, margin=(output_kind == "margin"))
    write_config(model_dir, name, filename, x_test.shape[1], output, served.shape[1],
                 {"output": output_kind} if output_kind != "prediction" else None, comment)
    write_reference_samples(version_dir, [{"name": "s0", "inputs": [("features", sample)],
                                           "outputs": [(output, served)]}],
                            tolerance=REFERENCE_TOLERANCE, comment=WRITTEN_BY, framework="XGBoost 1.7.4")
    rows = x_test[:32].copy()
    rows[31, :] = np.nan
    ref = {"model": name, "file": filename, "features": int(x_test.shape[1]), "input": json_rows(rows),
           "prediction": predict(rows).tolist(), "margin": predict(rows, margin=True).tolist(),
           "tolerance": REFERENCE_TOLERANCE[0]}
    os.makedirs(args.ref_out, exist_ok=True)
    with open(os.path.join(args.ref_out, f"xgboost_{name}.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    return os.path.getsize(os.path.join(version_dir, filename))


def train(params, x, y, rounds):
    base = {"nthread": 1, "seed": SEED, "tree_method": "hist", "eta": 0.1}
    return xgb.train({**base, **params}, xgb.DMatrix(x, label=y, missing=np.nan), rounds)


def split(rng, n, test_fraction):
    order = rng.permutation(n)
    cut = int(n * (1 - test_fraction))
    return order[:cut], order[cut:]


# The data of each model, split into training and test rows the same way on every run (the e2e tests
# call these to judge the served models on the same held-out rows).

def fraud_split():
    rng = np.random.default_rng(SEED + 1)
    x, y, truth = fraud_data(rng, 40000)
    tr, te = split(rng, len(x), 0.3)
    return x, y, tr, te, truth


def segment_split():
    rng = np.random.default_rng(SEED + 2)
    x, y = segment_data(rng, 20000)
    tr, te = split(rng, len(x), 0.3)
    return x, y, tr, te


def demand_split():
    x, y, day = demand_data(np.random.default_rng(SEED + 3))
    cut = np.quantile(day, 0.8)
    return x, y, np.where(day < cut)[0], np.where(day >= cut)[0]


def make_fraud(args):
    x, y, tr, te, truth = fraud_split()
    booster = train({"objective": "binary:logistic", "max_depth": 4, "min_child_weight": 2}, x[tr], y[tr], 60)
    p = booster.predict(xgb.DMatrix(x[te], missing=np.nan))
    scores = {"test_rows": int(len(te)), "positive_rate": float(y[te].mean()), "roc_auc": roc_auc(y[te], p),
              "roc_auc_of_the_true_probability": roc_auc(y[te], truth[te]),
              "log_loss": log_loss(y[te], p), "log_loss_of_base_rate": log_loss(y[te], np.full(len(te), y[tr].mean()))}
    comment = f"binary:logistic, 60 trees of depth <= 4; held-out ROC AUC {scores['roc_auc']:.3f}"
    scores["model_bytes"] = save_model(booster, args, "fraud_xgb", "model.json", x[te], "probability",
                                       "probability", comment)
    return scores


def make_segment(args):
    x, y, tr, te = segment_split()
    booster = train({"objective": "multi:softprob", "num_class": 4, "max_depth": 3}, x[tr], y[tr], 40)
    p = booster.predict(xgb.DMatrix(x[te], missing=np.nan))
    scores = {"test_rows": int(len(te)), "accuracy": float((p.argmax(axis=1) == y[te]).mean()),
              "majority_class_accuracy": float(np.bincount(y[te].astype(int)).max() / len(te))}
    comment = f"multi:softprob over 4 classes, 40 rounds of depth <= 3; held-out accuracy {scores['accuracy']:.3f}"
    scores["model_bytes"] = save_model(booster, args, "segment_xgb", "model.ubj", x[te], "probabilities",
                                       "prediction", comment)
    return scores


def make_demand(args):
    x, y, tr, te = demand_split()
    booster = train({"objective": "reg:squarederror", "max_depth": 5}, x[tr], y[tr], 80)
    p = booster.predict(xgb.DMatrix(x[te], missing=np.nan))
    naive = x[te, 6]  # the sales 7 days before
    scores = {"test_rows": int(len(te)), "rmse": rmse(p, y[te]), "mae": float(np.mean(np.abs(p - y[te]))),
              "seasonal_naive_rmse": rmse(naive, y[te]), "mean_units": float(y[te].mean())}
    comment = (f"reg:squarederror, 80 trees of depth <= 5; on the last 20% of days RMSE {scores['rmse']:.2f} "
               f"vs {scores['seasonal_naive_rmse']:.2f} for last week's sales")
    scores["model_bytes"] = save_model(booster, args, "demand_xgb", "model.json", x[te], "units", "prediction",
                                       comment)
    return scores


def write_fuzz_seeds(out_dir):
    """Tiny models (a few trees of depth <= 2) of every booster and format the backend serves."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(SEED)
    x = rng.normal(0, 1, (200, 3)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    labels = {"binary": (x[:, 0] > 0).astype(np.float32), "multiclass": (np.nan_to_num(x[:, 1]) > 0) + (x[:, 2] > 0.5)}
    models = {
        "binary_gbtree": ({"objective": "binary:logistic", "max_depth": 2}, "binary", 2),
        "multiclass_gbtree": ({"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, "multiclass", 1),
        "regression_dart": ({"booster": "dart", "objective": "reg:squarederror", "max_depth": 2}, "binary", 2),
        "binary_gblinear": ({"booster": "gblinear", "objective": "binary:logistic"}, "binary", 2),
    }
    for name, (params, label, rounds) in models.items():
        booster = xgb.train({"nthread": 1, "seed": SEED, **params},
                            xgb.DMatrix(x, label=labels[label].astype(np.float32), missing=np.nan), rounds)
        for fmt, letter in (("json", b"j"), ("ubj", b"u")):
            raw = bytes(booster.save_raw(raw_format=fmt))
            with open(os.path.join(out_dir, f"{name}_{fmt}"), "wb") as f:
                f.write(letter + raw)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(root, "examples", "models"))
    p.add_argument("--ref-out", default=os.path.join(root, "tools", "reference"))
    p.add_argument("--report", default=os.path.join(root, "tools", "data", "xgboost_report.json"))
    p.add_argument("--fuzz-out", default=os.path.join(root, "tests", "fuzz", "corpus", "xgboost_model"))
    args = p.parse_args()
    if xgb.__version__ != "1.7.4":
        sys.exit(f"xgboost {xgb.__version__} found; the server's library reads models of 1.7.4 (tools/requirements.txt)")
    report = {"xgboost": xgb.__version__}
    for name, make in (("fraud_xgb", make_fraud), ("segment_xgb", make_segment), ("demand_xgb", make_demand)):
        report[name] = make(args)
        print(name, json.dumps(report[name]))
    write_fuzz_seeds(args.fuzz_out)
    os.makedirs(os.path.dirname(args.report), exist_ok=True)
    with open(args.report, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
