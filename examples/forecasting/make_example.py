#!/usr/bin/env python3
"""The weekly forecasting example: trains the model and writes the week's input for the schedule.

    .venv/bin/python examples/forecasting/make_example.py [--out examples/forecasting]

Training data come from this file's generator (family A: additive trend, two yearly harmonics, a
December peak, promotions, Gaussian noise, 300 stores over four years). The model is judged elsewhere,
on series from eval_family.py (family B, written separately: a multiplicative seasonal bump at a
store's own week, level shifts, AR(1) noise, another promotion uplift), which it never saw.

Each row is one store and the week to forecast; its features are what a data pipeline has on the
Sunday before (`features_of`, shared by both families): the log of the last four weeks, of the same
week a year back and its neighbours, of the 4- and 13-week means, the target week's position in the
year, and whether a promotion is planned. The objective is reg:tweedie, whose log link makes the
served prediction the forecast in units, relative-accurate for small and large stores alike.

Writes <out>/models/forecast_xgb/{config.yaml,1/model.json,1/reference/}. Deterministic: fixed
seeds, one thread.
"""
import argparse
import os
import sys

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from reference_samples import write_reference_samples  # noqa: E402

SEED = 20261202
WEEKS_PER_YEAR = 52
FEATURES = ["log_lag1", "log_lag2", "log_lag3", "log_lag4", "log_lag52", "log_lag51", "log_lag53",
            "log_mean4", "log_mean13", "week_sin", "week_cos", "promo"]


def family_a(rng, stores, weeks):
    """Weekly unit sales (stores x weeks) and planned promotions (0/1) of the training family."""
    t = np.arange(weeks)
    level = rng.lognormal(mean=5.0, sigma=0.8, size=(stores, 1))               # ~150 units, 30..700
    trend = 1.0 + rng.normal(0.0, 0.0015, size=(stores, 1)) * t
    phase = rng.uniform(0, 2 * np.pi, size=(stores, 1))
    a1 = rng.uniform(0.05, 0.3, size=(stores, 1))
    a2 = rng.uniform(0.0, 0.1, size=(stores, 1))
    season = a1 * np.sin(2 * np.pi * t / WEEKS_PER_YEAR + phase) + a2 * np.sin(4 * np.pi * t / WEEKS_PER_YEAR)
    week_of_year = t % WEEKS_PER_YEAR
    december = np.where(week_of_year >= 47, rng.uniform(0.1, 0.5, size=(stores, 1)), 0.0)
    promo = (rng.random((stores, weeks)) < 0.08).astype(np.float64)
    uplift = rng.uniform(0.15, 0.45, size=(stores, 1)) * promo
    mean = level * trend * (1.0 + season + december + uplift)
    sales = np.maximum(0.0, mean + rng.normal(0.0, 1.0, size=mean.shape) * 0.08 * mean)
    return np.round(sales), promo


def features_of(sales, promo, week):
    """Feature rows (one per store) for forecasting `week` from weeks before it. week >= 53."""
    log = np.log1p
    cols = [log(sales[:, week - k]) for k in (1, 2, 3, 4)]
    cols += [log(sales[:, week - k]) for k in (52, 51, 53)]
    cols += [log(sales[:, week - 4:week].mean(axis=1)), log(sales[:, week - 13:week].mean(axis=1))]
    angle = 2 * np.pi * (week % WEEKS_PER_YEAR) / WEEKS_PER_YEAR
    cols += [np.full(sales.shape[0], np.sin(angle)), np.full(sales.shape[0], np.cos(angle)), promo[:, week]]
    return np.stack(cols, axis=1).astype(np.float32)


def training_rows():
    rng = np.random.default_rng(SEED)
    sales, promo = family_a(rng, stores=300, weeks=4 * WEEKS_PER_YEAR)
    xs, ys = [], []
    for week in range(53, sales.shape[1]):
        xs.append(features_of(sales, promo, week))
        ys.append(sales[:, week])
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


def write_config(model_dir, comment):
    lines = ["# Written by examples/forecasting/make_example.py; edit the script, not this file.",
             f"# {comment}",
             "name: forecast_xgb",
             "backend: xgboost",
             "platform: xgboost",
             "model_filename: model.json",
             "max_batch_size: 64",
             "inputs:",
             f"  - {{name: features, datatype: FP32, dims: [{len(FEATURES)}], columns: [{', '.join(FEATURES)}]}}",
             "outputs:",
             "  - {name: units, datatype: FP32, dims: [1]}",
             "dynamic_batching: {max_queue_delay_us: 200, preferred_batch_sizes: [16, 64]}",
             "instance_group: {count: 1, threads: 1}",
             "max_queue_size: 256"]
    with open(os.path.join(model_dir, "config.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    args = ap.parse_args()
    x, y = training_rows()
    params = {"objective": "reg:tweedie", "tweedie_variance_power": 1.2, "max_depth": 6, "eta": 0.08,
              "subsample": 0.9, "nthread": 1, "seed": SEED, "tree_method": "hist"}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), 300)
    model_dir = os.path.join(args.out, "models", "forecast_xgb")
    version_dir = os.path.join(model_dir, "1")
    os.makedirs(version_dir, exist_ok=True)
    booster.save_model(os.path.join(version_dir, "model.json"))
    saved = xgb.Booster(model_file=os.path.join(version_dir, "model.json"))
    saved.set_param({"nthread": 1})
    sample = x[:8]
    served = saved.predict(xgb.DMatrix(sample), strict_shape=True).astype(np.float32).reshape(8, 1)
    write_config(model_dir, f"reg:tweedie over log features, 300 trees of depth <= 6, trained on {len(x)} "
                            "store-weeks of family A")
    write_reference_samples(version_dir, [{"name": "s0", "inputs": [("features", sample)],
                                           "outputs": [("units", served)]}],
                            tolerance=(1.0e-3, 1.0e-6), comment="examples/forecasting/make_example.py",
                            framework="XGBoost 1.7.4")
    print(f"forecast_xgb: {len(x)} training rows, {len(FEATURES)} features -> {version_dir}/model.json")


if __name__ == "__main__":
    main()
