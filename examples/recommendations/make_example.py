#!/usr/bin/env python3
"""The food-delivery recommendations example: the catalog, the feature pipeline, and the two models.

    .venv/bin/python examples/recommendations/make_example.py [--out examples/recommendations] [--small]

The city (`catalog`, shared with eval_family.py because it is the world both families live in): N
restaurants on a 10 x 10 km map, each with a cuisine, a price level, a quality and a menu of twelve
items (five mains, three sides, two drinks, two desserts; price, vegetarian, spiciness, a "popular"
badge). Training data come from this file's generator (family A: Dirichlet cuisine tastes, an
exponential distance decay from home, price sensitivity and a habit bonus growing with the log of past
orders from the same place). The models are judged elsewhere, on users and orders of eval_family.py
(family B, written separately), which they never saw.

Two models, both XGBoost:
  - restaurant_ranker (multi:softprob): a user's feature row (`user_features`: home, order count,
    cuisine shares, mean price level, recency-weighted share of each restaurant in the history) ->
    the probability that the next order goes to each of the N restaurants. One row is the user's whole
    restaurant list, so a nightly batch over the known users precomputes it and the config's
    `precomputed:` block serves it; users the batch did not see go to the model live.
  - menu_ranker (binary:logistic): one row per (session, candidate item) (`item_rows`: the item, the
    hour, weekend, what the basket holds, the user's diet and spice flags) -> the probability that the
    item is the next one added. Called live with all of a restaurant's candidates as one request.

Writes <out>/models/{restaurant_ranker,menu_ranker}/{config.yaml,1/model.json,1/reference/}.
Deterministic: fixed seeds, one thread. --small makes the tiny world the e2e test uses.
"""
import argparse
import os
import sys
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from reference_samples import write_reference_samples  # noqa: E402

SEED = 20261203
CATALOG_SEED = 4242
CITY_KM = 10.0
CUISINES = ["pizza", "burger", "sushi", "indian", "thai", "mexican", "salad", "kebab"]
CATEGORIES = ["main", "side", "drink", "dessert"]
MENU = [0] * 5 + [1] * 3 + [2] * 2 + [3] * 2  # the category of each of a menu's twelve items
HOURS = [12, 19, 22]  # lunch, dinner, late
SIZES = {"full": {"restaurants": 48, "train_users": 4000, "rounds": 30, "item_rounds": 80,
                  "known": 1500, "new": 400},
         "small": {"restaurants": 24, "train_users": 900, "rounds": 10, "item_rounds": 20,
                   "known": 160, "new": 60}}
ITEM_FEATURES = ["cat_main", "cat_side", "cat_drink", "cat_dessert", "price_rel", "veg", "spicy",
                 "badge", "hour_sin", "hour_cos", "weekend", "has_main", "has_side", "has_drink",
                 "has_dessert", "basket_items", "user_veg", "user_spicy"]


def user_feature_names(n):
    return (["home_x", "home_y", "log_orders"] + [f"share_{c}" for c in CUISINES] + ["mean_price"]
            + [f"aff_r{r:02}" for r in range(n)])


@dataclass
class Catalog:
    cuisine: np.ndarray   # [N] index into CUISINES
    xy: np.ndarray        # [N, 2] km
    price: np.ndarray     # [N] price level 1..3
    quality: np.ndarray   # [N] latent, known to nobody but the generators
    item_price: np.ndarray   # [N, 12] euros
    item_veg: np.ndarray     # [N, 12] 0/1
    item_spicy: np.ndarray   # [N, 12] 0, 1, 2
    item_appeal: np.ndarray  # [N, 12] latent
    item_badge: np.ndarray   # [N, 12] 0/1: the app's "popular" badge, a noisy view of the appeal

    @property
    def size(self):
        return len(self.cuisine)


def catalog(n):
    """The city's restaurants and menus: the same for a given N, in both families."""
    rng = np.random.default_rng(CATALOG_SEED)
    cuisine = rng.permutation(np.arange(n) % len(CUISINES))
    xy = rng.uniform(0.5, CITY_KM - 0.5, size=(n, 2))
    price = rng.choice([1, 2, 3], size=n, p=[0.4, 0.4, 0.2]).astype(np.float64)
    quality = rng.normal(0.0, 0.4, size=n)
    cat = np.tile(MENU, (n, 1))
    base = np.array([11.0, 4.5, 3.0, 5.5])[cat]
    item_price = np.round(base * (0.7 + 0.25 * price[:, None]) * rng.lognormal(0, 0.15, cat.shape), 1)
    veg_p = np.where(cat == 0, np.where(np.isin(cuisine, [0, 6])[:, None], 0.7, 0.3),
                     np.where(cat == 1, 0.7, 1.0))
    item_veg = (rng.random(cat.shape) < veg_p).astype(np.float64)
    hot = np.isin(cuisine, [3, 4, 5])[:, None]
    spicy_p = np.where(cat <= 1, np.where(hot, 0.6, 0.15), 0.0)
    item_spicy = (rng.random(cat.shape) < spicy_p) * rng.integers(1, 3, size=cat.shape)
    item_appeal = rng.normal(0.0, 0.6, size=cat.shape)
    noisy = item_appeal + rng.normal(0.0, 0.4, size=cat.shape)
    item_badge = (noisy >= np.sort(noisy, axis=1)[:, [-3]]).astype(np.float64)
    return Catalog(cuisine, xy, price, quality, item_price, item_veg, item_spicy.astype(np.float64),
                   item_appeal, item_badge)


def user_features(history, home, cat):
    """The user's feature row from the restaurants of past orders (oldest first) and home (km)."""
    f = np.zeros(12 + cat.size, dtype=np.float32)
    f[0:2] = np.asarray(home) / CITY_KM
    f[2] = np.log1p(len(history))
    if len(history):
        h = np.asarray(history)
        f[3:11] = np.bincount(cat.cuisine[h], minlength=len(CUISINES)) / len(h)
        f[11] = cat.price[h].mean()
        w = 0.75 ** np.arange(len(h))[::-1]
        f[12:] = np.bincount(h, weights=w, minlength=cat.size) / w.sum()
    return f


def item_rows(cat, restaurant, candidates, context, basket):
    """One row per candidate item of `restaurant`. context: {hour, weekend, user_veg, user_spicy};
    basket: the items already in it."""
    candidates = np.asarray(candidates)
    kinds = np.asarray(MENU)
    rows = np.zeros((len(candidates), len(ITEM_FEATURES)), dtype=np.float32)
    rows[np.arange(len(candidates)), kinds[candidates]] = 1.0
    prices = cat.item_price[restaurant]
    rows[:, 4] = prices[candidates] / np.median(prices)
    rows[:, 5] = cat.item_veg[restaurant, candidates]
    rows[:, 6] = cat.item_spicy[restaurant, candidates] / 2.0
    rows[:, 7] = cat.item_badge[restaurant, candidates]
    angle = 2 * np.pi * context["hour"] / 24.0
    rows[:, 8], rows[:, 9], rows[:, 10] = np.sin(angle), np.cos(angle), context["weekend"]
    held = kinds[list(basket)] if basket else np.array([], dtype=int)
    for k in range(4):
        rows[:, 11 + k] = float(np.any(held == k))
    rows[:, 15] = len(basket)
    rows[:, 16], rows[:, 17] = context["user_veg"], context["user_spicy"]
    return rows


def softmax_choice(rng, utility):
    p = np.exp(utility - utility.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def family_a_users(rng, cat, users):
    """Homes, order histories (restaurant indices, oldest first) and diet/spice flags of family A."""
    homes = rng.uniform(0, CITY_KM, size=(users, 2))
    taste = rng.dirichlet(np.full(len(CUISINES), 0.6), size=users)
    price_sens = rng.uniform(0.2, 1.0, size=users)
    decay = rng.uniform(0.25, 0.7, size=users)
    habit = rng.uniform(0.5, 2.0, size=users)
    counts = 1 + rng.poisson(7, size=users)
    dist = np.linalg.norm(homes[:, None, :] - cat.xy[None], axis=2)
    base = (1.5 * np.log(taste[:, cat.cuisine] + 0.03) - decay[:, None] * dist
            - price_sens[:, None] * cat.price[None] + cat.quality[None])
    histories = []
    for u in range(users):
        seen, hist = np.zeros(cat.size), []
        for _ in range(counts[u]):
            r = softmax_choice(rng, base[u] + habit[u] * np.log1p(seen))
            hist.append(r)
            seen[r] += 1
        histories.append(hist)
    flags = np.stack([rng.random(users) < 0.25, rng.random(users) < 0.4], axis=1).astype(np.float64)
    return homes, histories, flags


def item_utility_a(cat, r, candidates, context, basket):
    kinds = np.asarray(MENU)[candidates]
    held = {MENU[i] for i in basket}
    need = np.select([kinds == 0, kinds == 1, kinds == 2],
                     [2.0 if 0 not in held else -1.5,
                      0.8 if 0 in held and 1 not in held else -0.5,
                      (0.6 + 0.6 * (context["hour"] == 12)) if 2 not in held else -1.0],
                     default=(0.8 if context["hour"] >= 19 or context["weekend"] else -0.8) if 3 not in held else -1.0)
    veg = cat.item_veg[r, candidates]
    diet = -2.5 * context["user_veg"] * (1 - veg) * (kinds == 0)
    spicy = cat.item_spicy[r, candidates] * (0.5 if context["user_spicy"] else -0.7)
    price = -0.08 * cat.item_price[r, candidates] / np.median(cat.item_price[r])
    return need + diet + spicy + price + cat.item_appeal[r, candidates]


def basket_sessions(rng, cat, restaurant, context, utility, max_items=4):
    """Yields (candidates, basket, chosen) for each item added in one order, family's `utility`."""
    basket = []
    for _ in range(max_items):
        candidates = [i for i in range(len(MENU)) if i not in basket]
        chosen = candidates[softmax_choice(rng, utility(cat, restaurant, candidates, context, basket))]
        yield candidates, list(basket), chosen
        basket.append(chosen)
        if len(basket) >= 2 and rng.random() < 0.45:
            break


def training_rows(size):
    rng = np.random.default_rng(SEED)
    cat = catalog(size["restaurants"])
    homes, histories, flags = family_a_users(rng, cat, size["train_users"])
    ux, uy, ix, iy = [], [], [], []
    for u, hist in enumerate(histories):
        for k in range(len(hist)):
            ux.append(user_features(hist[:k], homes[u], cat))
            uy.append(hist[k])
            if rng.random() >= 0.3:
                continue  # items: three orders in ten are enough
            context = {"hour": int(rng.choice(HOURS, p=[0.35, 0.5, 0.15])), "weekend": float(rng.random() < 2 / 7),
                       "user_veg": flags[u, 0], "user_spicy": flags[u, 1]}
            for candidates, basket, chosen in basket_sessions(rng, cat, hist[k], context, item_utility_a):
                ix.append(item_rows(cat, hist[k], candidates, context, basket))
                iy.append((np.asarray(candidates) == chosen).astype(np.float32))
    return cat, (np.stack(ux), np.asarray(uy)), (np.concatenate(ix), np.concatenate(iy))


def write_config(model_dir, name, lines, comment):
    head = ["# Written by examples/recommendations/make_example.py; edit the script, not this file.",
            f"# {comment}", f"name: {name}", "backend: xgboost", "platform: xgboost",
            "model_filename: model.json", "max_batch_size: 64"]
    tail = ["dynamic_batching: {max_queue_delay_us: 100, preferred_batch_sizes: [16, 64]}",
            "instance_group: {count: 1, threads: 1}", "max_queue_size: 256"]
    with open(os.path.join(model_dir, "config.yaml"), "w") as f:
        f.write("\n".join(head + lines + tail) + "\n")


def save_model(out, name, booster, sample, input_name, output_name, width):
    """Saves the booster and its reference samples (the saved model's own predictions)."""
    version_dir = os.path.join(out, "models", name, "1")
    os.makedirs(version_dir, exist_ok=True)
    path = os.path.join(version_dir, "model.json")
    booster.save_model(path)
    saved = xgb.Booster(model_file=path)
    saved.set_param({"nthread": 1})
    served = saved.predict(xgb.DMatrix(sample), strict_shape=True).astype(np.float32).reshape(len(sample), width)
    write_reference_samples(version_dir, [{"name": "s0", "inputs": [(input_name, sample)],
                                           "outputs": [(output_name, served)]}],
                            tolerance=(1.0e-5, 1.0e-4), comment="examples/recommendations/make_example.py",
                            framework="XGBoost 1.7.4")
    return os.path.dirname(version_dir)


def train_restaurants(out, size, x, y):
    n = size["restaurants"]
    params = {"objective": "multi:softprob", "num_class": n, "max_depth": 4, "eta": 0.3,
              "subsample": 0.9, "min_child_weight": 2, "nthread": 1, "seed": SEED, "tree_method": "hist"}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), size["rounds"])
    model_dir = save_model(out, "restaurant_ranker", booster, x[:4], "user", "scores", n)
    names = user_feature_names(n)
    write_config(model_dir, "restaurant_ranker", [
        "inputs:",
        f"  - {{name: user, datatype: FP32, dims: [{len(names)}], columns: [{', '.join(names)}]}}",
        "outputs:",
        f"  - {{name: scores, datatype: FP32, dims: [{n}]}}",
        "# A request with parameters.key (the user id) is answered from the nightly table when the",
        "# user is in it and the entry is at most 26 h old; any other goes to the model.",
        "precomputed: {table: restaurant_lists, max_age_s: 93600}"],
        f"multi:softprob over {n} restaurants, {size['rounds']} rounds of depth <= 4, trained on "
        f"{len(x)} orders of family A")


def train_items(out, size, x, y):
    params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.2, "subsample": 0.9,
              "nthread": 1, "seed": SEED, "tree_method": "hist"}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), size["item_rounds"])
    model_dir = save_model(out, "menu_ranker", booster, x[:len(MENU)], "candidates", "probability", 1)
    write_config(model_dir, "menu_ranker", [
        "inputs:",
        f"  - {{name: candidates, datatype: FP32, dims: [{len(ITEM_FEATURES)}], "
        f"columns: [{', '.join(ITEM_FEATURES)}]}}",
        "outputs:",
        "  - {name: probability, datatype: FP32, dims: [1]}",
        "parameters: {output: probability}"],
        f"binary:logistic, {size['item_rounds']} rounds of depth <= 5, trained on {len(x)} "
        "(session, candidate item) rows of family A")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--small", action="store_true", help="the tiny world of the e2e test")
    args = ap.parse_args()
    size = SIZES["small" if args.small else "full"]
    _, (ux, uy), (ix, iy) = training_rows(size)
    train_restaurants(args.out, size, ux, uy)
    train_items(args.out, size, ix, iy)
    print(f"restaurant_ranker: {len(ux)} orders, {ux.shape[1]} features, {size['restaurants']} restaurants; "
          f"menu_ranker: {len(ix)} candidate rows -> {args.out}/models")


if __name__ == "__main__":
    main()
