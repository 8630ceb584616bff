#!/usr/bin/env python3
"""The recommendations example's evaluation family (B), written apart from the training generator (A,
make_example.py) so that the models are judged on users and orders they were not made from:

  - homes cluster around three neighbourhoods (A: uniform over the city);
  - a user has one or two favourite cuisines (A: a Dirichlet mix over all eight);
  - distance falls off as a Gaussian of a user's own radius (A: exponential), prices past a user's
    budget cost (A: linear in the price level);
  - habit is loyalty to places ordered from at least twice, and some users seek novelty instead;
  - restaurants moved since training: each one's quality drifted;
  - baskets: a side after a main is a combo, drinks sell at any hour, desserts late and at weekends,
    a vegetarian's diet is softer, spice matters more to those who like it.

    eval_family.py --work DIR [--small]

writes DIR/in/known-users.csv (id + the user feature columns of every known user, their history up to
last night: what the nightly schedule reads, also as DIR/in/users/<date>.csv for today's date in UTC
and in Berlin), DIR/eval/sessions.jsonl (today's traffic in arrival order: one session per user, known
or signed up today, with the user's features, the restaurant of the order placed and the basket steps:
context, basket so far, candidate items, the item added) and DIR/eval/meta.json (the world's size and
the most-ordered restaurants, the popularity baseline). replay.py sends the sessions to the server.
"""
import argparse
import csv
import datetime
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The world and the data pipeline are shared; the generator is not.
from make_example import (CITY_KM, CUISINES, HOURS, MENU, SIZES, basket_sessions, catalog,  # noqa: E402
                          softmax_choice, user_feature_names, user_features)

SEED = 991


def homes_b(rng, users):
    centres = np.array([[2.5, 3.0], [7.0, 7.5], [6.5, 2.0]])
    near = rng.random(users) < 0.6
    around = centres[rng.integers(0, 3, size=users)] + rng.normal(0, 1.2, size=(users, 2))
    return np.clip(np.where(near[:, None], around, rng.uniform(0, CITY_KM, size=(users, 2))), 0, CITY_KM)


def base_utility_b(rng, cat, homes):
    users = len(homes)
    favourite = np.zeros((users, len(CUISINES)))
    favourite[np.arange(users), rng.integers(0, len(CUISINES), size=users)] = 2.0
    second = rng.random(users) < 0.5
    favourite[np.arange(users)[second], rng.integers(0, len(CUISINES), size=second.sum())] += 1.2
    taste = favourite + rng.normal(0, 0.3, size=favourite.shape)
    radius = rng.uniform(2.0, 5.0, size=users)
    dist = np.linalg.norm(homes[:, None, :] - cat.xy[None], axis=2)
    budget = rng.choice([1.0, 2.0, 3.0], size=users, p=[0.3, 0.5, 0.2])
    over = np.maximum(0.0, cat.price[None] - budget[:, None])
    drift = rng.normal(0, 0.3, size=cat.size)
    return (taste[:, cat.cuisine] - 0.5 * (dist / radius[:, None]) ** 2 - 1.2 * over
            + 0.7 * cat.quality[None] + drift[None])


def histories_b(rng, cat, homes, lengths):
    """Order histories of family B (restaurant indices, oldest first), lengths[u] orders each."""
    base = base_utility_b(rng, cat, homes)
    novelty = rng.random(len(homes)) < 0.2
    out = []
    for u, n in enumerate(lengths):
        seen, hist = np.zeros(cat.size), []
        for _ in range(n):
            habit = -0.5 * np.log1p(seen) if novelty[u] else 1.0 * (seen >= 2) + 0.3 * (seen == 1)
            r = softmax_choice(rng, base[u] + habit)
            hist.append(r)
            seen[r] += 1
        out.append(hist)
    return out


def item_utility_b(cat, r, candidates, context, basket):
    kinds = np.asarray(MENU)[candidates]
    held = {MENU[i] for i in basket}
    late_or_weekend = context["hour"] == 22 or context["weekend"]
    need = np.select([kinds == 0, kinds == 1, kinds == 2],
                     [2.5 if 0 not in held else -1.2,
                      1.2 if 0 in held and 1 not in held else -0.8,
                      1.0 if 2 not in held else -1.2],
                     default=(1.2 if late_or_weekend else -1.0 if context["hour"] == 12 else 0.0)
                     if 3 not in held else -1.5)
    veg = cat.item_veg[r, candidates]
    diet = -1.5 * context["user_veg"] * (1 - veg) * (kinds <= 1)
    spicy = cat.item_spicy[r, candidates] * (0.8 if context["user_spicy"] else -0.4)
    price = -0.3 * np.log(cat.item_price[r, candidates] / np.median(cat.item_price[r]))
    return need + diet + spicy + price + 1.2 * cat.item_appeal[r, candidates]


def fmt(row):
    return [f"{float(v):.9g}" for v in row]


def session(rng, cat, user, known, features, restaurant, flags):
    context = {"hour": int(rng.choice(HOURS, p=[0.3, 0.5, 0.2])), "weekend": float(rng.random() < 2 / 7),
               "user_veg": float(flags[0]), "user_spicy": float(flags[1])}
    steps = [{"basket": basket, "candidates": candidates, "chosen": chosen}
             for candidates, basket, chosen in basket_sessions(rng, cat, restaurant, context, item_utility_b)]
    return {"user": user, "known": known, "features": [float(v) for v in fmt(features)],
            "next": int(restaurant), "context": context, "steps": steps}


def schedule_dates():
    now = datetime.datetime.now(datetime.timezone.utc)
    dates = {now.strftime("%Y-%m-%d")}
    try:
        from zoneinfo import ZoneInfo
        dates.add(now.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d"))
    except Exception:  # no time zone data: the UTC date only
        pass
    return sorted(dates)


def write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def inputs(work, small):
    size = SIZES["small" if small else "full"]
    rng = np.random.default_rng(SEED)
    cat = catalog(size["restaurants"])
    known, new = size["known"], size["new"]
    homes = homes_b(rng, known + new)
    lengths = np.concatenate([2 + rng.poisson(9, size=known), 1 + rng.choice(3, size=new, p=[0.4, 0.35, 0.25])])
    histories = histories_b(rng, cat, homes, lengths)  # the last order of each is today's, held out
    flags = np.stack([rng.random(known + new) < 0.2, rng.random(known + new) < 0.5], axis=1)
    sessions, rows, counts = [], [], np.zeros(cat.size)
    for u, hist in enumerate(histories):
        user = f"user-{100000 + u}"
        features = user_features(hist[:-1], homes[u], cat)
        if u < known:
            rows.append([user] + fmt(features))
            counts += np.bincount(hist[:-1], minlength=cat.size)
        sessions.append(session(rng, cat, user, u < known, features, hist[-1], flags[u]))
    header = ["id"] + user_feature_names(cat.size)
    write_csv(os.path.join(work, "in", "known-users.csv"), header, rows)
    for date in schedule_dates():
        write_csv(os.path.join(work, "in", "users", f"{date}.csv"), header, rows)
    os.makedirs(os.path.join(work, "eval"), exist_ok=True)
    with open(os.path.join(work, "eval", "sessions.jsonl"), "w") as f:
        for i in rng.permutation(len(sessions)):
            f.write(json.dumps(sessions[i]) + "\n")
    meta = {"small": small, "restaurants": cat.size, "known": known, "new": new,
            "popular": [int(r) for r in np.argsort(-counts, kind="stable")]}
    with open(os.path.join(work, "eval", "meta.json"), "w") as f:
        json.dump(meta, f)
    print(f"family B: {known} known users in {work}/in/known-users.csv (and users/<date>.csv for "
          f"{', '.join(schedule_dates())}), {new} new today; {len(sessions)} sessions in {work}/eval/sessions.jsonl")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--small", action="store_true", help="the tiny world of the e2e test")
    args = ap.parse_args()
    inputs(args.work, args.small)


if __name__ == "__main__":
    main()
