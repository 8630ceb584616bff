#!/usr/bin/python3
"""Trains the rug-cutting example's two models on simulated camera frames and writes them as a Ferry
model repository (models/<name>/config.yaml + models/<name>/1/model.onnx) with models/ACCURACY.md.

Run with Debian's Python (python3-torch 1.13, python3-opencv 4.6), from anywhere:

    nice -n 10 /usr/bin/python3 examples/rug-cutting/train_models.py [--quick] [--workers 2]

  line_search    frame -> visible FP32 [1, 1] (a probability: sigmoid in the graph) and edge_mm FP32
                 [1, 1]: where the line's outer edge is, relative to the frame's centre row (+ = below),
                 clamped to +-30 mm in the graph; meaningful only when visible.
  line_tracking  frame -> offset_mm FP32 [1, 1] (the line's centre relative to the centre row) and
                 angle_deg FP32 [1, 1] (+ = the line descends to the right).

Ferry turns the BGR frame into the model's input itself (the `preprocess` block of the config):
grey -> INTER_AREA resize to 96x72 -> x/255 -> (x - 0.5)/0.5; training feeds exactly that
(rugsim.camera.model_pixels, then scale_pixels). Rugs with seeds below HELD_OUT_SEED train;
seeds from HELD_OUT_SEED up are never trained on and give the numbers in ACCURACY.md, for the
models and for the classical baseline (rugsim/baseline.py) on the same frames.

Deterministic for a given machine: fixed seeds, rendering split over workers by rug, fixed order.
3.5 minutes on two idle cores, about 6 on busy ones (mostly rendering and training).
"""
import argparse
import copy
import math
import multiprocessing as mp
import os
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from rugsim import Camera, Rug, baseline, truth  # noqa: E402
from rugsim.camera import EDGE_RANGE_MM, model_pixels, scale_pixels, search_view, tracking_view  # noqa: E402

OPSET = 13
SEED = 20261128
HELD_OUT_SEED = 10000
INPUT_W, INPUT_H = 96, 72
KINDS = ("S1", "L1")
TASKS = ("search", "tracking")
EDGE_WEIGHT = 0.5             # search loss: BCE(visible) + this x smooth L1(edge, mm)

# Per model: training rugs per kind and frames per rug; held-out rugs per kind and frames per rug.
FULL = {"train_rugs": 60, "train_views": 180, "epochs": 8, "eval_rugs": 10, "eval_views": 40}
QUICK = {"train_rugs": 6, "train_views": 60, "epochs": 1, "eval_rugs": 2, "eval_views": 20}


# --------------------------------------------------------------------------------------------- data

def render_rug(job):
    """Frames of one rug for each task: model inputs (uint8 grey 96x72, before scaling), targets,
    and the frames themselves when asked (for the baseline). Runs in a worker process."""
    kind, seed, n, keep_frames = job
    cv2.setNumThreads(1)
    rug = Rug(kind, seed)
    cam = Camera(light_seed=seed)
    out = {}
    for ti, task in enumerate(TASKS):
        rng = np.random.default_rng([seed, KINDS.index(kind), ti])
        xs = np.empty((n, INPUT_H, INPUT_W), np.uint8)
        ys = np.empty((n, 2), np.float32)
        frames = []
        for i in range(n):
            v = search_view(rug, rng) if task == "search" else tracking_view(rug, rng)
            frame = cam.render(rug, rng=rng, **v)
            t = truth(rug, v["roll_mm"], v["carriage_mm"])
            xs[i] = model_pixels(frame, size=(INPUT_W, INPUT_H))
            if task == "search":
                ys[i] = (float(t["edge_visible"]), t["edge_offset_mm"])
            else:
                ys[i] = (t["line_offset_mm"], t["line_angle_deg"])
            if keep_frames:
                frames.append(frame)
        out[task] = (xs, ys, frames)
    return out


def dataset(pool, kinds_seeds, n, keep_frames=False):
    """{task: (inputs, targets, kind per frame, frames or None)} over the given rugs, in order."""
    parts = pool.map(render_rug, [(kind, seed, n, keep_frames) for kind, seed in kinds_seeds], chunksize=1)
    kinds = np.repeat([k for k, _ in kinds_seeds], n)
    return {task: (np.concatenate([p[task][0] for p in parts]), np.concatenate([p[task][1] for p in parts]),
                   kinds, [f for p in parts for f in p[task][2]] if keep_frames else None)
            for task in TASKS}


def to_input(pixels):
    """uint8 [N, 72, 96] from model_pixels -> the models' input [N, 1, 72, 96] (rugsim.camera.model_input)."""
    return torch.from_numpy(scale_pixels(pixels)).unsqueeze(1)


# ------------------------------------------------------------------------------------------- models

def conv_bn_relu(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class HeatNet(nn.Module):
    """Finds the line as a heat map over rows, one per column group, and reads positions off it as
    the expected row under a softmax (sub-row precision without a wide dense layer). Ops OpenCV 4.6
    DNN imports: Conv, BN, ReLU, AveragePool, Softmax (one axis, opset 13), Flatten, Gemm.
    Outputs: [position_mm, angle_deg] for tracking, [visible_logit, edge_mm] for search."""

    def __init__(self, task, width=16):
        super().__init__()
        self.task = task
        c = width
        self.features = nn.Sequential(
            nn.AvgPool2d((1, 8)),                     # 72x12: rows keep their resolution
            conv_bn_relu(1, c // 2, 1),               # 72x12
            conv_bn_relu(c // 2, c, 2),               # 36x6
            conv_bn_relu(c, c, 1),
            nn.Conv2d(c, c, 3, padding=(2, 1), dilation=(2, 1), bias=False),   # taller context
            nn.BatchNorm2d(c), nn.ReLU(inplace=True),
        )
        self.heat = nn.Conv2d(c, 1, 3, padding=1)
        rows, groups = INPUT_H // 2, INPUT_W // 16
        # Row centres of the heat map in mm from the frame's centre row (240 px / rows per bin).
        row_mm = ((torch.arange(rows, dtype=torch.float32) + 0.5) * (240.0 / rows) - 120.0) * 0.25
        self.expect = nn.Conv2d(1, 1, (rows, 1), bias=False)
        with torch.no_grad():
            self.expect.weight.copy_(row_mm.view(1, 1, rows, 1))
        self.expect.weight.requires_grad_(False)
        self.flatten = nn.Flatten(1)
        # Column-group centres in mm from the centre column; a straight line through the group
        # positions gives the value at the centre (the mean) and the slope (least squares).
        x_mm = ((torch.arange(groups, dtype=torch.float32) + 0.5) * (320.0 / groups) - 160.0) * 0.25
        self.position = nn.Linear(groups, 1)
        self.slope = nn.Linear(groups, 1)
        with torch.no_grad():
            self.position.weight.fill_(1.0 / groups)
            self.position.bias.zero_()
            self.slope.weight.copy_((x_mm / (x_mm * x_mm).sum() * 180.0 / math.pi).view(1, groups))
            self.slope.bias.zero_()
        if task == "search":
            # Is the edge in the frame: a judgement over the whole frame, so one more, coarser stage.
            self.visible = nn.Sequential(conv_bn_relu(c, 2 * c, 2), nn.Flatten(1),
                                         nn.Linear(2 * c * (rows // 2) * (groups // 2), 32), nn.ReLU(inplace=True),
                                         nn.Linear(32, 1))

    def forward(self, x):
        f = self.features(x)
        p = torch.softmax(self.heat(f), dim=2)          # over rows, per column group
        rows_mm = self.flatten(self.expect(p))           # [N, groups]
        if self.task == "search":
            return [self.visible(f), self.position(rows_mm)]
        return [self.position(rows_mm), self.slope(rows_mm)]


class SearchExport(nn.Module):
    """visible = sigmoid(logit); edge_mm = the edge head clamped to +-30 mm, written with ReLUs
    (OpenCV 4.6 gets Clip wrong)."""

    def __init__(self, net):
        super().__init__()
        self.net = copy.deepcopy(net).eval()

    def forward(self, x):
        logit, edge = self.net(x)
        r = EDGE_RANGE_MM
        return torch.sigmoid(logit), torch.relu(edge + r) - torch.relu(edge - r) - r


class TrackingExport(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = copy.deepcopy(net).eval()

    def forward(self, x):
        offset, angle = self.net(x)
        return offset, angle


# ----------------------------------------------------------------------------------------- training

def train(task, xs, ys, epochs, log):
    torch.manual_seed(SEED + (0 if task == "search" else 1))
    net = HeatNet(task)
    n = len(xs)
    batch = 64
    steps = epochs * (n // batch)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    gen = np.random.default_rng(SEED)
    y = torch.from_numpy(ys)
    bce = nn.BCEWithLogitsLoss()
    t0 = time.time()
    for epoch in range(epochs):
        net.train()
        order = gen.permutation(n)
        total = 0.0
        for b in range(n // batch):
            idx = order[b * batch:(b + 1) * batch]
            x = to_input(xs[idx])
            yt = y[idx].clone()
            # Mirror half the batch left-right: the same line, its angle negated (the view centre
            # moves by one frame pixel, 0.25 mm in x: < 0.02 mm in y; negligible).
            flip = torch.from_numpy(gen.random(len(idx)) < 0.5)
            x[flip] = torch.flip(x[flip], dims=[3])
            a, c = net(x)
            if task == "search":
                vis, edge = yt[:, 0:1], yt[:, 1:2]
                near = (edge.abs() <= EDGE_RANGE_MM + 3).float()   # the edge is only learned near the frame
                loss = bce(a, vis) + (near * nn.functional.smooth_l1_loss(
                    c, edge.clamp(-EDGE_RANGE_MM, EDGE_RANGE_MM), reduction="none", beta=0.5)).sum() / (
                    near.sum() + 1) * EDGE_WEIGHT
            else:
                yt[flip, 1] = -yt[flip, 1]
                loss = (nn.functional.smooth_l1_loss(a, yt[:, 0:1], beta=0.5)
                        + nn.functional.smooth_l1_loss(c, yt[:, 1:2], beta=0.25))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss)
        log(f"  {task} epoch {epoch + 1}/{epochs}: loss {total / (n // batch):.4f} ({time.time() - t0:.0f} s)")
    return net.eval()


# ----------------------------------------------------------------------------------- export / check

def export(model, path, outputs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 1, INPUT_H, INPUT_W), path, input_names=["input"],
                      output_names=outputs, opset_version=OPSET, do_constant_folding=True)
    return os.path.getsize(path)


def check_opencv(model, path, outputs, xs):
    """cv2.dnn must agree with PyTorch on real frames (max abs difference < 1e-3)."""
    net = cv2.dnn.readNetFromONNX(path)
    worst = 0.0
    for i in range(len(xs)):
        x = to_input(xs[i:i + 1])
        with torch.no_grad():
            ref = [t.numpy() for t in model(x)]
        net.setInput(x.numpy())
        got = net.forward(outputs)
        for r, g in zip(ref, got):
            assert g.shape == (1, 1), g.shape
            worst = max(worst, float(np.abs(r - g).max()))
    if worst >= 1e-3:
        sys.exit(f"{path}: OpenCV DNN differs from PyTorch by {worst}")
    return worst


def opencv_outputs(path, outputs, xs):
    net = cv2.dnn.readNetFromONNX(path)
    out = np.zeros((len(xs), len(outputs)), np.float32)
    for i in range(len(xs)):
        net.setInput(to_input(xs[i:i + 1]).numpy())
        out[i] = [float(o.ravel()[0]) for o in net.forward(outputs)]
    return out


def time_opencv(path, outputs, xs, n=300):
    cv2.setNumThreads(1)
    net = cv2.dnn.readNetFromONNX(path)
    x = to_input(xs[:1]).numpy()
    for _ in range(20):
        net.setInput(x)
        net.forward(outputs)
    t = time.perf_counter()
    for _ in range(n):
        net.setInput(x)
        net.forward(outputs)
    return (time.perf_counter() - t) / n * 1e3


CONFIG = """# Written by examples/rug-cutting/train_models.py; edit the script, not this file.
name: {name}
backend: opencv_dnn
max_batch_size: 0
inputs:
  - {{name: frame, datatype: BYTES, dims: [1]}}
outputs:
{outputs}
preprocess:
  input: frame
  raw: {{width: 320, height: 240, channels: 3}}
  color: grey
  resize: [{w}, {h}]
  interpolation: area
  scale: 0.00392156862745098
  mean: [0.5]
  std: [0.5]
  tensor: {{name: input, dims: [1, 1, {h}, {w}]}}
instance_group: {{count: 1, threads: 1}}
max_queue_size: 8
"""


def write_config(model_dir, name, outputs):
    outs = "\n".join(f"  - {{name: {o}, datatype: FP32, dims: [1, 1]}}" for o in outputs)
    with open(os.path.join(model_dir, "config.yaml"), "w") as f:
        f.write(CONFIG.format(name=name, outputs=outs, w=INPUT_W, h=INPUT_H))


# ---------------------------------------------------------------------------------------- evaluation

def search_metrics(vis_true, edge_true, vis_pred, edge_pred):
    both = vis_true & vis_pred
    e = np.abs(edge_true[both] - edge_pred[both]) if both.any() else np.array([np.nan])
    return {"n": int(len(vis_true)), "visible_acc": float((vis_true == vis_pred).mean()),
            "edge_mae": float(e.mean()), "edge_p95": float(np.percentile(e, 95))}


def tracking_metrics(off_true, ang_true, off_pred, ang_pred):
    e = np.abs(off_true - off_pred)
    return {"n": int(len(off_true)), "offset_mae": float(e.mean()), "offset_p95": float(np.percentile(e, 95)),
            "angle_mae": float(np.abs(ang_true - ang_pred).mean())}


def evaluate(pool, cfg, out_dir, log):
    held = [(k, HELD_OUT_SEED + i) for k in KINDS for i in range(cfg["eval_rugs"])]
    data = dataset(pool, held, cfg["eval_views"], keep_frames=True)
    results = {}
    xs, ys, kinds, frames = data["search"]
    pred = opencv_outputs(os.path.join(out_dir, "line_search", "1", "model.onnx"), ["visible", "edge_mm"], xs)
    base = np.array(pool.map(baseline.search, frames, chunksize=32), dtype=np.float64)
    for kind in KINDS:
        m = kinds == kind
        vt, et = ys[m, 0] > 0.5, ys[m, 1]
        results[("line_search", kind, "model")] = search_metrics(vt, et, pred[m, 0] > 0.5, pred[m, 1])
        results[("line_search", kind, "baseline")] = search_metrics(vt, et, base[m, 0] > 0.5, base[m, 1])
    xs, ys, kinds, frames = data["tracking"]
    pred = opencv_outputs(os.path.join(out_dir, "line_tracking", "1", "model.onnx"),
                          ["offset_mm", "angle_deg"], xs)
    base = np.array(pool.map(baseline.track, frames, chunksize=32), dtype=np.float64)
    for kind in KINDS:
        m = kinds == kind
        results[("line_tracking", kind, "model")] = tracking_metrics(ys[m, 0], ys[m, 1], pred[m, 0], pred[m, 1])
        results[("line_tracking", kind, "baseline")] = tracking_metrics(ys[m, 0], ys[m, 1], base[m, 0], base[m, 1])
    for key, r in results.items():
        log(f"  {key}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    return results, len(held) // len(KINDS)


# The floors tests/e2e/test_rug_sim_and_models.py asserts on its own held-out views (keep the two
# equal). Set well below what training reaches, so a broken model fails and an unlucky draw does not.
FLOORS = {
    "model": {"visible_acc": 0.93, "edge_mae": 0.8, "offset_mae": 0.4, "angle_mae": 0.7},
    "baseline": {"visible_acc": 0.85, "edge_mae": 1.5, "offset_mae": 1.0, "angle_mae": 1.2},
}


def write_accuracy(path, results, eval_rugs, cfg, info):
    lines = [
        "# Rug-cutting models: held-out accuracy",
        "",
        "Written by `examples/rug-cutting/train_models.py`; edit the script, not this file.",
        "",
        f"Held-out rugs: seeds {HELD_OUT_SEED}..{HELD_OUT_SEED + eval_rugs - 1} of each carpet type (training "
        f"used seeds 0..{cfg['train_rugs'] - 1}), {cfg['eval_views']} frames per rug and task, drawn like the "
        "training views (rugsim.camera.search_view / tracking_view: search from 120 mm before the edge to "
        "50 mm past it, conveyor 0-200 mm/s; tracking within 12 mm of the line, carriage 50-300 mm/s). "
        "Models ran through OpenCV DNN on the exported ONNX with Ferry's pre-processing; the baseline is "
        "`rugsim/baseline.py` on the same frames. Edge errors count frames both the truth and the "
        "estimate call visible. mm on the rug; 1 px of the 320x240 frame = 0.25 mm.",
        "",
        "| model | carpet | metric | model | baseline | test floor (model / baseline) |",
        "|---|---|---|---|---|---|",
    ]
    metrics = {"line_search": [("visible_acc", "visible accuracy", ">="), ("edge_mae", "edge MAE mm", "<="),
                               ("edge_p95", "edge 95th pct mm", None)],
               "line_tracking": [("offset_mae", "offset MAE mm", "<="), ("offset_p95", "offset 95th pct mm", None),
                                 ("angle_mae", "angle MAE deg", "<=")]}
    for name, ms in metrics.items():
        for kind in KINDS:
            for key, label, op in ms:
                m = results[(name, kind, "model")][key]
                b = results[(name, kind, "baseline")][key]
                floor = f"{op} {FLOORS['model'][key]} / {op} {FLOORS['baseline'][key]}" if op else ""
                lines.append(f"| {name} | {kind} | {label} | {m:.3f} | {b:.3f} | {floor} |")
    lines += ["", "| model | ONNX bytes | parameters | cv2.dnn ms/frame (1 thread, this machine) "
              "| max abs diff vs PyTorch |", "|---|---|---|---|---|"]
    for name, (size, params, ms, diff) in info.items():
        lines.append(f"| {name} | {size} | {params} | {ms:.2f} | {diff:.1e} |")
    lines += [
        "",
        "Notes. `visible` is a probability (sigmoid in the graph); 0.5 is the threshold used here. The "
        "models see the frame at 96x72 (0.83 mm per input pixel), the baseline at full resolution "
        "(0.25 mm): where the baseline finds a clear edge it can place it at least as precisely as "
        "the search model, but it misses faint lines and is misled by coarse pile more often. "
        "Both models read positions off a softmax over rows (a heat map per column group), so "
        "`edge_mm` and `offset_mm` are not limited to the input's pixel grid.",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def tune_baseline(pool, log):
    """Prints the VISIBLE_SCORE that maximises visible accuracy on training rugs (not held-out ones)."""
    rugs = [(k, s) for k in KINDS for s in range(40)]
    _, ys, _, frames = dataset(pool, rugs, 20, keep_frames=True)["search"]
    scores = np.array(pool.map(baseline.detection_score, frames, chunksize=32))
    tops = np.array([baseline.search(f)[1] for f in frames])
    in_frame = np.abs(tops) <= 29.0
    vis = ys[:, 0] > 0.5
    best = max((float((((scores >= t) & in_frame) == vis).mean()), t) for t in np.arange(0.5, 6.0, 0.1))
    log(f"baseline: best VISIBLE_SCORE {best[1]:.1f} (training accuracy {best[0]:.3f}); "
        f"now {baseline.VISIBLE_SCORE}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(HERE, "models"))
    p.add_argument("--quick", action="store_true", help="a small smoke run (poor models)")
    p.add_argument("--workers", type=int, default=2, help="processes that render frames")
    p.add_argument("--tune-baseline", action="store_true", help="only tune the baseline's threshold")
    args = p.parse_args()
    cfg = QUICK if args.quick else FULL
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)

    # Workers first: they render with numpy/OpenCV and must not inherit torch's thread pools.
    pool = mp.get_context("fork").Pool(args.workers)
    if args.tune_baseline:
        tune_baseline(pool, log)
        return
    # One thread: on two shared cores, two OpenMP threads run several times slower, not faster.
    torch.set_num_threads(1)
    train_rugs = [(k, s) for k in KINDS for s in range(cfg["train_rugs"])]
    data = dataset(pool, train_rugs, cfg["train_views"])
    log(f"{len(train_rugs)} training rugs, {cfg['train_views']} frames per rug and task rendered")
    info = {}
    for task, name, outputs, wrap in (("search", "line_search", ["visible", "edge_mm"], SearchExport),
                                      ("tracking", "line_tracking", ["offset_mm", "angle_deg"], TrackingExport)):
        xs, ys, _, _ = data[task]
        net = train(task, xs, ys, cfg["epochs"], log)
        model = wrap(net).eval()
        model_dir = os.path.join(args.out, name)
        onnx_path = os.path.join(model_dir, "1", "model.onnx")
        size = export(model, onnx_path, outputs)
        diff = check_opencv(model, onnx_path, outputs, xs[:16])
        ms = time_opencv(onnx_path, outputs, xs)
        write_config(model_dir, name, outputs)
        params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        info[name] = (size, params, ms, diff)
        log(f"{name}: {onnx_path} ({size} bytes, {params} parameters, cv2.dnn {ms:.2f} ms/frame, "
            f"max diff vs torch {diff:.1e})")
    del data
    results, eval_rugs = evaluate(pool, cfg, args.out, log)
    write_accuracy(os.path.join(args.out, "ACCURACY.md"), results, eval_rugs, cfg, info)
    pool.close()
    log(f"done: {os.path.join(args.out, 'ACCURACY.md')}")


if __name__ == "__main__":
    main()
