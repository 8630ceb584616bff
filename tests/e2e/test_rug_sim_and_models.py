"""The rug-cutting example's simulator, its two models and the classical baseline, without a server.

The simulator must tell the truth about what it draws (the models are trained on that truth), and the
models in examples/rug-cutting/models must beat stated floors on rugs they were never trained on,
run the way Ferry runs them: OpenCV DNN on the ONNX file, after the pre-processing of their config.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rug-cutting"
sys.path.insert(0, str(EXAMPLE))

from rugsim import Camera, Rug, baseline, truth  # noqa: E402
from rugsim.camera import model_input, search_view, tracking_view  # noqa: E402
from rugsim.rug import LUMA  # noqa: E402

MODELS = EXAMPLE / "models"
# Held-out seeds the training script never uses (it trains below 10000 and reports 10000..10009).
TEST_SEEDS = (10100, 10101, 10102)
VIEWS_PER_RUG = 34           # x 3 rugs x 2 kinds ~ 200 views per task
# Floors (keep equal to FLOORS in examples/rug-cutting/train_models.py).
MODEL_FLOOR = {"visible_acc": 0.93, "edge_mae": 0.8, "offset_mae": 0.4, "angle_mae": 0.7}
BASELINE_FLOOR = {"visible_acc": 0.85, "edge_mae": 1.5, "offset_mae": 1.0, "angle_mae": 1.2}


@pytest.fixture(scope="module")
def cam():
    return Camera()


# ------------------------------------------------------------------------------------------ simulator

def test_rug_geometry_is_deterministic_and_in_spec():
    xs = np.linspace(0, 1600, 81)
    for kind in ("S1", "L1"):
        for seed in (0, 1, 2, 10000):
            a, b = Rug(kind, seed), Rug(kind, seed)
            assert np.array_equal(a.line_y(xs), b.line_y(xs))
            assert np.array_equal(a.texture, b.texture)
            assert 3.0 <= a.line_width_mm <= 6.0
            assert abs(a.nominal_line_y - a.line_y(800.0)) <= 40.0
            # A small angle plus a smooth wobble of a few mm.
            trend = np.polyfit(xs, a.line_y(xs), 1)
            assert abs(math.degrees(math.atan(trend[0]))) <= 2.0
            assert np.abs(a.line_y(xs) - np.polyval(trend, xs)).max() <= 6.0
            assert np.allclose(a.edge_y(xs), a.line_y(xs) - a.line_width_mm / 2)
    assert not np.array_equal(Rug("S1", 0).line_y(xs), Rug("L1", 0).line_y(xs))


def test_truth_agrees_with_the_rug():
    rug = Rug("L1", 7)
    for x in (0.0, 333.3, 800.0, 1599.0):
        roll = rug.line_y(x) + 3.7
        t = truth(rug, roll, x)
        assert t["line_offset_mm"] == pytest.approx(rug.line_y(x) - roll)
        assert t["edge_offset_mm"] == pytest.approx(rug.edge_y(x) - roll)
        assert t["line_offset_mm"] - t["edge_offset_mm"] == pytest.approx(rug.line_width_mm / 2)
        h = 1e-3
        fd = math.degrees(math.atan((rug.line_y(x + h) - rug.line_y(x - h)) / (2 * h)))
        assert t["line_angle_deg"] == pytest.approx(fd, abs=1e-5)
    # Visible: the edge row (120 + offset / 0.25) at least 4 px inside the 240-row frame.
    x = 500.0
    for offset, visible in ((0.0, True), (28.5, True), (29.5, False), (-28.75, True), (-30.5, False),
                            (80.0, False)):
        assert truth(rug, rug.edge_y(x) - offset, x)["edge_visible"] is visible, offset


def edge_row(frame, rug, carriage, cam, cols):
    """The row of the stripe's outer edge at the centre column, measured in the image: the columns'
    profiles are aligned by the line's known run across the frame (whole rows) and averaged, then
    the row where the brightness crosses half-way from the rug's to the stripe's is interpolated."""
    g = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    xs = carriage + (cols - cam.width_px / 2) * cam.mm_per_px
    run = np.rint((rug.edge_y(xs) - rug.edge_y(carriage)) / cam.mm_per_px).astype(int)
    p = np.mean([g[60 + r:180 + r, c] for c, r in zip(cols, run)], axis=0)     # rows 60..179
    rug_level = np.median(p[:40])                                              # rows 60..99
    dev = p[40:100] - rug_level
    inside = rug_level + float(np.median(dev[np.argsort(-np.abs(dev))[:6]]))  # the stripe's level
    half = (rug_level + inside) / 2
    d = (p - half) * np.sign(inside - rug_level)
    r = next(i for i in range(40, 100) if d[i] > 0)      # first row past half-way, from above
    return 60 + r - 1 + float(-d[r - 1] / (d[r] - d[r - 1]))


def test_stripe_edge_is_drawn_where_truth_says(cam):
    """roll = edge_y(x): the outer edge must be on the centre row of a clean render (row 120, whose
    pixel centre looks at y = roll: it is half stripe, half rug), within 2 px."""
    for kind in ("S1", "L1"):
        for seed in (0, 1, 2, 3):
            rug = Rug(kind, seed).plain()
            for x in (150.0, 800.0, 1420.0):
                roll = rug.edge_y(x)
                assert truth(rug, roll, x)["edge_offset_mm"] == pytest.approx(0.0, abs=1e-9)
                frame = cam.render(rug, roll, x, effects=False)
                # Pile frays the edge by up to a few px here and there (zero on average): the
                # whole width is measured.
                row = edge_row(frame, rug, x, cam, np.arange(320))
                assert abs(row - 120.0) <= 2.0, (rug, x, row)
    # And the measurement can fail: 3 mm off is 12 px off.
    rug = Rug("S1", 0).plain()
    frame = cam.render(rug, rug.edge_y(800.0) - 3.0, 800.0, effects=False)
    assert abs(edge_row(frame, rug, 800.0, cam, np.arange(320)) - (120.0 + 12)) <= 2.0


def test_render_is_deterministic(cam):
    rug = Rug("S1", 11)
    kw = dict(t_s=12.5, speed_mm_s=(180.0, 5.0))
    a = cam.render(rug, 1000.0, 640.0, rng=np.random.default_rng(3), **kw)
    b = cam.render(rug, 1000.0, 640.0, rng=np.random.default_rng(3), **kw)
    c = cam.render(rug, 1000.0, 640.0, rng=np.random.default_rng(4), **kw)
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    clean = cam.render(rug, 1000.0, 640.0, **kw)
    assert np.array_equal(clean, cam.render(rug, 1000.0, 640.0, **kw))
    assert 1.0 < np.abs(a.astype(float) - clean).mean() < 10.0     # sensor noise: present, modest


@pytest.mark.parametrize("kind", ["S1", "L1"])
def test_texture_is_fixed_to_the_rug(cam, kind):
    """Moving the camera by exactly k pixels moves the picture by k pixels (noise and lighting off)."""
    rug = Rug(kind, 21)
    x, y, k = 700.1, float(rug.line_y(700.1)) + 2.0, 7
    base = cam.render(rug, y, x, effects=False).astype(int)
    right = cam.render(rug, y, x + k * cam.mm_per_px, effects=False).astype(int)
    down = cam.render(rug, y + k * cam.mm_per_px, x, effects=False).astype(int)
    for moved, overlap in ((right[:, :-k], base[:, k:]), (down[:-k], base[k:])):
        diff = np.abs(moved - overlap)
        assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())
    # And the picture does change with position (not a constant image).
    assert np.abs(right - base).mean() > 2.0


def test_motion_blur_follows_speed(cam):
    rug = Rug("L1", 5)
    x, y = 400.0, float(rug.line_y(400.0))
    sharp = cam.render(rug, y, x)
    fast_x = cam.render(rug, y, x, speed_mm_s=(300.0, 0.0))
    fast_y = cam.render(rug, y, x, speed_mm_s=(0.0, 200.0))

    def grad(img, dx, dy):
        return float(np.abs(cv2.Sobel(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F, dx, dy)).mean())
    # Blur along x softens changes along x much more than changes along y, and vice versa.
    rx = [grad(f, 1, 0) / grad(sharp, 1, 0) for f in (fast_x, fast_y)]
    ry = [grad(f, 0, 1) / grad(sharp, 0, 1) for f in (fast_x, fast_y)]
    assert rx[0] < 0.8 * ry[0], (rx, ry)
    assert ry[1] < 0.8 * rx[1], (rx, ry)
    assert rx[0] < 0.75 and ry[1] < 0.8


def test_render_is_fast_enough(cam):
    rug = Rug("L1", 2)
    rng = np.random.default_rng(0)
    cam.render(rug, 1000.0, 500.0, rng=rng)
    n = 60
    t = time.perf_counter()
    for i in range(n):
        cam.render(rug, 1000.0 + i * 0.1, 500.0 + i * 0.3, t_s=i / 30, speed_mm_s=(250.0, 3.0), rng=rng)
    ms = (time.perf_counter() - t) / n * 1e3
    print(f"render: {ms:.2f} ms/frame")
    assert ms < 25.0   # ~3 ms on an idle core; generous for a busy shared machine


# --------------------------------------------------------------------------------- models and baseline

def held_out_views(kind_task):
    """(frames, truths, kinds) for the test's held-out rugs, drawn like the training views."""
    task = kind_task
    frames, truths, kinds = [], [], []
    for kind in ("S1", "L1"):
        for seed in TEST_SEEDS:
            rug = Rug(kind, seed)
            cam = Camera(light_seed=seed)
            rng = np.random.default_rng([seed, 77, 0 if task == "search" else 1])
            for _ in range(VIEWS_PER_RUG):
                v = search_view(rug, rng) if task == "search" else tracking_view(rug, rng)
                frames.append(cam.render(rug, rng=rng, **v))
                truths.append(truth(rug, v["roll_mm"], v["carriage_mm"]))
                kinds.append(kind)
    return frames, truths, np.array(kinds)


def run_model(name, outputs, frames):
    config = (MODELS / name / "config.yaml").read_text()
    # The test feeds what the config tells Ferry to do.
    for line in ("color: grey", "resize: [96, 72]", "interpolation: area", "scale: 0.00392156862745098",
                 "mean: [0.5]", "std: [0.5]", "tensor: {name: input, dims: [1, 1, 72, 96]}",
                 "raw: {width: 320, height: 240, channels: 3}"):
        assert line in config, line
    assert "crop:" not in config
    for o in outputs:
        assert f"{{name: {o}, datatype: FP32, dims: [1, 1]}}" in config
    net = cv2.dnn.readNetFromONNX(str(MODELS / name / "1" / "model.onnx"))
    out = []
    for f in frames:
        net.setInput(model_input(f))
        res = net.forward(outputs)
        assert all(r.shape == (1, 1) for r in res)
        out.append([float(r[0, 0]) for r in res])
    return np.array(out)


def report(title, rows):
    print(f"\n{title}")
    for r in rows:
        print("  " + r)


def test_line_search_model_and_baseline():
    frames, truths, kinds = held_out_views("search")
    vis = np.array([t["edge_visible"] for t in truths])
    edge = np.array([t["edge_offset_mm"] for t in truths])
    model = run_model("line_search", ["visible", "edge_mm"], frames)
    assert ((model[:, 0] >= 0) & (model[:, 0] <= 1)).all()          # a probability
    assert (np.abs(model[:, 1]) <= 30.0 + 1e-4).all()               # clamped
    base = np.array([baseline.search(f) for f in frames], dtype=float)
    rows = []
    for kind in ("S1", "L1"):
        m = kinds == kind
        for label, pred, floor in (("model", model, MODEL_FLOOR), ("baseline", base, BASELINE_FLOOR)):
            pv = pred[m, 0] > 0.5
            acc = float((pv == vis[m]).mean())
            both = pv & vis[m]
            mae = float(np.abs(pred[m, 1][both] - edge[m][both]).mean())
            rows.append(f"{kind} {label:8s}: visible accuracy {acc:.3f}, edge MAE {mae:.3f} mm "
                        f"({both.sum()} frames both visible, of {m.sum()})")
            assert acc >= floor["visible_acc"], rows[-1]
            assert mae <= floor["edge_mae"], rows[-1]
    report("line_search on held-out rugs", rows)


def test_line_tracking_model_and_baseline():
    frames, truths, kinds = held_out_views("tracking")
    off = np.array([t["line_offset_mm"] for t in truths])
    ang = np.array([t["line_angle_deg"] for t in truths])
    model = run_model("line_tracking", ["offset_mm", "angle_deg"], frames)
    base = np.array([baseline.track(f) for f in frames], dtype=float)
    rows = []
    for kind in ("S1", "L1"):
        m = kinds == kind
        for label, pred, floor in (("model", model, MODEL_FLOOR), ("baseline", base, BASELINE_FLOOR)):
            omae = float(np.abs(pred[m, 0] - off[m]).mean())
            amae = float(np.abs(pred[m, 1] - ang[m]).mean())
            rows.append(f"{kind} {label:8s}: offset MAE {omae:.3f} mm, angle MAE {amae:.3f} deg "
                        f"({m.sum()} frames)")
            assert omae <= floor["offset_mae"], rows[-1]
            assert amae <= floor["angle_mae"], rows[-1]
    report("line_tracking on held-out rugs", rows)
