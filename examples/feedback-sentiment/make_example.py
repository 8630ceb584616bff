#!/usr/bin/python3
"""The nightly feedback-sentiment example: makes training reviews, trains the classifier, exports it.

    /usr/bin/python3 examples/feedback-sentiment/make_example.py [--out examples/feedback-sentiment]

(Debian's Python, which has python3-torch 1.13; torch.onnx.export writes the ONNX file itself.)

Training reviews come from this file's generator (family A): a product aspect, an opinion word with an
optional intensifier or negation ("not great" is negative), sometimes a second clause after "but"
that decides the label, in a handful of sentence frames. The classifier is judged on eval_family.py's
reviews (family B, written apart: other frames, words A never uses, typos, shouting, emoji), which it
never saw.

The text handling is the model config's: `preprocess: {text: {ngrams: [1, 3], buckets: 4096}}` turns
each review's bytes into hashed character n-gram counts (text_features.py is the same in Python); the
ONNX graph is a small MLP over them (4096 -> 64 -> 2, softmax), which OpenCV DNN serves.

Writes <out>/models/feedback_sentiment/{config.yaml,1/model.onnx}. Deterministic: fixed seeds.
"""
import argparse
import os
import random
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from text_features import text_features  # noqa: E402

SEED = 4242
BUCKETS = 4096

ASPECTS = ["delivery", "the quality", "the price", "customer support", "the packaging", "the fit", "the battery",
           "the app", "the refund", "the staff", "the size", "the colour", "the material", "the instructions"]
GOOD = ["great", "excellent", "good", "fantastic", "perfect", "fast", "helpful", "lovely", "solid", "amazing",
        "reliable", "comfortable", "nice", "impressive", "friendly"]
BAD = ["terrible", "awful", "bad", "poor", "slow", "broken", "useless", "disappointing", "rude", "cheap",
       "flimsy", "horrible", "late", "faulty", "annoying"]
INTENSIFIERS = ["", "", "really ", "very ", "so ", "quite ", "extremely "]
FRAMES = ["{aspect} was {opinion}", "{aspect} is {opinion}", "I found {aspect} {opinion}",
          "honestly, {aspect} was {opinion}", "{aspect}: {opinion}", "overall {aspect} felt {opinion}"]


def clause(rng):
    positive = rng.random() < 0.5
    negated = rng.random() < 0.25
    word = rng.choice(GOOD if positive else BAD)
    opinion = ("not " if negated else "") + rng.choice(INTENSIFIERS) + word
    text = rng.choice(FRAMES).format(aspect=rng.choice(ASPECTS), opinion=opinion)
    return text, positive != negated


def review(rng):
    text, label = clause(rng)
    if rng.random() < 0.35:  # "X, but Y": Y decides
        second, label = clause(rng)
        text = f"{text}, but {second}"
    text = text[0].upper() + text[1:] + rng.choice([".", "!", ".", ""])
    return text, int(label)


def make_reviews(n, seed):
    rng = random.Random(seed)
    return [review(rng) for _ in range(n)]


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(BUCKETS, 64)
        self.out = torch.nn.Linear(64, 2)

    def forward(self, features):
        return torch.softmax(self.out(torch.relu(self.hidden(features))), dim=1)


def train(x, y):
    torch.manual_seed(SEED)
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-5)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(8):
        order = torch.randperm(len(xs), generator=torch.Generator().manual_seed(SEED + epoch))
        for i in range(0, len(xs), 128):
            idx = order[i:i + 128]
            probs = model(xs[idx])
            loss = torch.nn.functional.nll_loss(torch.log(probs + 1e-9), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def write_config(model_dir, comment):
    text = f"""# Written by examples/feedback-sentiment/make_example.py; edit the script, not this file.
# {comment}
name: feedback_sentiment
backend: opencv_dnn
max_batch_size: 64
inputs:
  - {{name: review, datatype: BYTES, dims: [1]}}
outputs:
  - {{name: probabilities, datatype: FP32, dims: [2]}}
preprocess:
  input: review
  text: {{ngrams: [1, 3], buckets: {BUCKETS}}}
  tensor: {{name: features, dims: [{BUCKETS}]}}
dynamic_batching: {{max_queue_delay_us: 200, preferred_batch_sizes: [16, 64]}}
instance_group: {{count: 1, threads: 1}}
max_queue_size: 256
"""
    with open(os.path.join(model_dir, "config.yaml"), "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    args = ap.parse_args()
    reviews = make_reviews(20000, SEED)
    x = np.stack([text_features(t, BUCKETS) for t, _ in reviews])
    y = np.array([label for _, label in reviews], dtype=np.int64)
    model = train(x, y)
    train_accuracy = float((model(torch.from_numpy(x)).argmax(dim=1).numpy() == y).mean())
    model_dir = os.path.join(args.out, "models", "feedback_sentiment")
    os.makedirs(os.path.join(model_dir, "1"), exist_ok=True)
    torch.onnx.export(model, torch.from_numpy(x[:2]), os.path.join(model_dir, "1", "model.onnx"),
                      input_names=["features"], output_names=["probabilities"],
                      dynamic_axes={"features": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=13)
    write_config(model_dir, f"MLP {BUCKETS} -> 64 -> 2 over hashed character 1..3-grams; trained on "
                            f"{len(reviews)} family-A reviews (training accuracy {train_accuracy:.3f})")
    print(f"feedback_sentiment: {len(reviews)} reviews, training accuracy {train_accuracy:.3f} -> {model_dir}")


if __name__ == "__main__":
    main()
