#!/usr/bin/env python3
"""The feedback-sentiment example's evaluation reviews (family B), written apart from the training
generator (make_example.py, family A) so that the classifier is judged on text it was not made from:
other sentence frames (questions, first-person stories, recommendations), opinion words family A never
uses (superb, dreadful, meh ...), typos (a swapped or dropped letter), SHOUTING, emoji and product
names. Labels: the opinion's polarity, flipped by a negation ("wouldn't recommend").

    eval_family.py inputs --work DIR   writes DIR/in/feedback/<date>.csv (id,review: tonight's feedback,
                                       what the nightly schedule reads), DIR/in/eval.csv (all of it)
                                       and DIR/labels.csv
    eval_family.py report --work DIR --results FILE [--readme FILE] [--records-per-second R]
                                       accuracy of the served predictions against the labels
"""
import csv
import datetime
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from example_report import run  # noqa: E402

SEED = 99
REVIEWS = 3000

PRODUCTS = ["the kettle", "my new headphones", "this jacket", "the blender", "their courier", "the sofa",
            "the phone case", "the desk lamp", "this backpack", "the hotline"]
GOOD = ["superb", "brilliant", "excellent", "top notch", "great", "flawless", "wonderful", "good",
        "outstanding", "terrific", "helpful", "fast"]
BAD = ["dreadful", "rubbish", "meh", "terrible", "a total letdown", "awful", "shoddy", "bad", "disappointing",
       "a waste of money", "slow", "broken"]
POSITIVE_FRAMES = ["Would {neg}recommend {product}, it is {opinion}", "{product} turned out {opinion}",
                   "Is {product} {opinion}? Yes", "We bought {product} last week and it is {opinion}",
                   "5/5, {product} is {opinion}"]
EMOJI = {True: [" :)", " \U0001F600", " \U0001F44D", ""], False: [" :(", " \U0001F620", " \U0001F44E", ""]}


def typo(rng, text):
    if len(text) < 6 or rng.random() < 0.6:
        return text
    i = rng.randrange(1, len(text) - 2)
    if rng.random() < 0.5:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]  # swap two letters
    return text[:i] + text[i + 1:]  # drop one


def review(rng):
    positive = rng.random() < 0.5
    opinion = rng.choice(GOOD if positive else BAD)
    frame = rng.choice(POSITIVE_FRAMES)
    negated = "{neg}" in frame and rng.random() < 0.5
    text = frame.format(product=rng.choice(PRODUCTS), opinion=opinion, neg="not " if negated else "")
    label = positive != negated
    text = typo(rng, text)
    if rng.random() < 0.1:
        text = text.upper()
    text += rng.choice(EMOJI[label])
    return text, int(label)


def inputs(work):
    rng = random.Random(SEED)
    rows = [(f"fb-{i:05}",) + review(rng) for i in range(REVIEWS)]
    os.makedirs(os.path.join(work, "in", "feedback"), exist_ok=True)
    with open(os.path.join(work, "in", "eval.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "review"])
        w.writerows((k, t) for k, t, _ in rows)
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    with open(os.path.join(work, "in", "feedback", f"{today}.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "review"])
        w.writerows((k, t) for k, t, _ in rows[:300])
    with open(os.path.join(work, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows((k, label) for k, _, label in rows)
    print(f"family B: {REVIEWS} reviews in {work}/in/eval.csv; tonight's 300 in {work}/in/feedback/{today}.csv")


def report(work, predictions):
    with open(os.path.join(work, "labels.csv")) as f:
        labels = {r["id"]: int(r["label"]) for r in csv.DictReader(f)}
    with open(predictions) as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0] if c != "id"]
    assert len(columns) == 2, columns
    predicted = {r["id"]: int(float(r[columns[1]]) > float(r[columns[0]])) for r in rows}
    assert set(predicted) == set(labels), f"{len(predicted)} predictions for {len(labels)} reviews"
    correct = sum(predicted[k] == labels[k] for k in labels)
    majority = max(sum(labels.values()), len(labels) - sum(labels.values()))
    lines = [f"- reviews classified: {len(labels)} (family B, never seen in training)",
             f"- accuracy, feedback_sentiment: {correct / len(labels):.3f}",
             f"- accuracy of always answering the larger class: {majority / len(labels):.3f}"]
    return lines


def main():
    run(__doc__, inputs, report)


if __name__ == "__main__":
    main()
