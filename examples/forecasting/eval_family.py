#!/usr/bin/env python3
"""The forecasting example's evaluation family (B), written apart from the training generator (A,
make_example.py) so that the model is judged on series it was not made from:

  - seasonality is multiplicative: one bump a year at a week of the store's own (not harmonics);
  - a store's level shifts once, up or down, at a random week (a competitor, a refit);
  - noise is AR(1) (a bad week is followed by another) with heavier tails (Student t, 4 dof);
  - promotions lift by a store-specific 10..60% and pull some of next week's sales forward.

    eval_family.py inputs --work DIR     writes DIR/in/eval.csv (every store, the last 13 weeks, one
                                         row each: id + features), DIR/in/stores/<date>.csv (this week
                                         only: what the weekly schedule reads) and DIR/actuals.csv
    eval_family.py report --work DIR --results FILE [--readme FILE] [--records-per-second R]
                                         MAPE of the served forecasts and of the seasonal-naive
                                         forecast (the same week a year before) against the actuals
"""
import csv
import datetime
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from example_report import run  # noqa: E402
from make_example import FEATURES, features_of  # noqa: E402  (the data pipeline, shared; not the generator)

SEED = 777
STORES = 200
WEEKS = 3 * 52
EVAL_WEEKS = 13


def family_b(rng):
    t = np.arange(WEEKS)
    base = rng.lognormal(mean=4.6, sigma=0.9, size=(STORES, 1))
    peak_week = rng.integers(0, 52, size=(STORES, 1))
    width = rng.uniform(2.0, 6.0, size=(STORES, 1))
    height = rng.uniform(0.1, 0.8, size=(STORES, 1))
    distance = np.minimum(np.abs((t % 52) - peak_week), 52 - np.abs((t % 52) - peak_week))
    season = 1.0 + height * np.exp(-0.5 * (distance / width) ** 2)
    shift_at = rng.integers(60, WEEKS - 20, size=(STORES, 1))
    shift = np.where(t >= shift_at, rng.uniform(0.7, 1.3, size=(STORES, 1)), 1.0)
    promo = (rng.random((STORES, WEEKS)) < 0.1).astype(np.float64)
    lift = 1.0 + rng.uniform(0.1, 0.6, size=(STORES, 1)) * promo
    pulled = 1.0 - 0.1 * np.roll(promo, 1, axis=1)  # the week after a promotion sells less
    noise = np.zeros((STORES, WEEKS))
    shocks = rng.standard_t(4, size=(STORES, WEEKS)) * 0.06
    for w in range(1, WEEKS):
        noise[:, w] = 0.5 * noise[:, w - 1] + shocks[:, w]
    sales = base * season * shift * lift * pulled * np.exp(noise)
    return np.round(np.maximum(sales, 0.0)), promo


def write_rows(path, rows, header):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def inputs(work):
    sales, promo = family_b(np.random.default_rng(SEED))
    eval_rows, actual_rows, week_rows = [], [], []
    for week in range(WEEKS - EVAL_WEEKS, WEEKS):
        x = features_of(sales, promo, week)
        for store in range(STORES):
            key = f"store{store:03}-w{week}"
            row = [key] + [f"{v:.6g}" for v in x[store]]
            eval_rows.append(row)
            if week == WEEKS - 1:
                week_rows.append(row)
            actual_rows.append([key, int(sales[store, week]), int(sales[store, week - 52])])
    write_rows(os.path.join(work, "in", "eval.csv"), eval_rows, ["id"] + FEATURES)
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    write_rows(os.path.join(work, "in", "stores", f"{today}.csv"), week_rows, ["id"] + FEATURES)
    write_rows(os.path.join(work, "actuals.csv"), actual_rows, ["id", "actual", "seasonal_naive"])
    print(f"family B: {STORES} stores, {EVAL_WEEKS} weeks -> {len(eval_rows)} rows in {work}/in/eval.csv, "
          f"this week's {len(week_rows)} in {work}/in/stores/{today}.csv")


def mape(forecast, actual):
    keep = actual > 0
    return float(np.mean(np.abs(forecast[keep] - actual[keep]) / actual[keep]) * 100.0)


def report(work, forecasts):
    actual, naive = {}, {}
    with open(os.path.join(work, "actuals.csv")) as f:
        for r in csv.DictReader(f):
            actual[r["id"]] = float(r["actual"])
            naive[r["id"]] = float(r["seasonal_naive"])
    served = {}
    with open(forecasts) as f:
        for r in csv.DictReader(f):
            served[r["id"]] = float(r["units"])
    assert set(served) == set(actual), f"{len(served)} forecasts for {len(actual)} store-weeks"
    keys = sorted(actual)
    a = np.array([actual[k] for k in keys])
    model = mape(np.array([served[k] for k in keys]), a)
    baseline = mape(np.array([naive[k] for k in keys]), a)
    lines = [f"- store-weeks forecast: {len(keys)} ({STORES} stores x {EVAL_WEEKS} weeks of family B, "
             "never seen in training)",
             f"- MAPE, forecast_xgb: {model:.1f}%",
             f"- MAPE, seasonal naive (the same week last year): {baseline:.1f}%",
             f"- ratio: {model / baseline:.2f} of the seasonal-naive error"]
    return lines


def main():
    run(__doc__, inputs, report)


if __name__ == "__main__":
    main()
