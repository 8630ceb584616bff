#!/usr/bin/env python3
"""Runs B13 (the same CNN through each ONNX backend) and B14 (fp32 vs int8) and prints their ratios.

    .venv/bin/python bench/run_backend_benchmarks.py            # 10 s runs, 3 interleaved reps (~15 min)
    .venv/bin/python bench/run_backend_benchmarks.py --quick    # 2 s runs, 1 rep (~3 min)

Needs build/release (ferry, bench_load_client, bench_inprocess_limit built with OpenCV and OpenVINO) and
.venv (numpy, tritonclient: scripts/setup-python.sh) for the accuracy pass.

  B13 examples/models/cnn (FP32 [3,224,224] -> [10], 602 KB binary input) on opencv_dnn and on openvino:
      the in-process limit (bench_inprocess_limit: the backend's Execute, loaded as the server loads it;
      batch 1 latency and 1x8 throughput) and served by one Ferry holding both (c=1 latency, c=8
      saturated throughput with the shipped dynamic batching).
  B14 the shapes classifier (tools/make_int8_example.py): fp32 on opencv_dnn, fp32 on openvino and the
      NNCF int8 model on openvino; the same in-process and served runs, and top-1 accuracy over the
      held-out set (tools/data/shapes_heldout.npz, 500 images) through the server.
Each rep runs the in-process limits and the server in an order rotated per rep. Raw results go to
bench/results/backends-<UTC timestamp>.json (gitignored).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402  (the shared server, client and machine helpers)

EXAMPLES = rb.EXAMPLES
HELDOUT = rb.ROOT / "tools" / "data" / "shapes_heldout.npz"

# name in the bench repository -> (example folder, backend, bench group)
MODELS = {
    "cnn_opencv_dnn": ("cnn", "opencv_dnn", "B13"),
    "cnn_openvino": ("cnn", "openvino", "B13"),
    "shapes_fp32_opencv_dnn": ("shapes", "opencv_dnn", "B14"),
    "shapes_fp32_openvino": ("shapes_openvino", "openvino", "B14"),
    "shapes_int8_openvino": ("shapes_int8", "openvino", "B14"),
}
SHAPES = {"cnn": "1,3,224,224", "shapes": "1,3,32,32", "shapes_openvino": "1,3,32,32", "shapes_int8": "1,3,32,32"}


def make_repo(workdir: Path) -> Path:
    repo = workdir / "repo"
    for name, (example, backend, _) in MODELS.items():
        dst = repo / name
        shutil.copytree(EXAMPLES / example, dst)
        cfg = (dst / "config.yaml").read_text()
        cfg = re.sub(r"^name: .*$", f"name: {name}", cfg, flags=re.M)
        cfg = re.sub(r"^backend: .*$", f"backend: {backend}", cfg, flags=re.M)
        if backend != "openvino":  # the OpenVINO parameters mean nothing to OpenCV
            cfg = re.sub(r"^parameters: .*\n", "", cfg, flags=re.M)
        (dst / "config.yaml").write_text(cfg)
    return repo


def client_args(name: str, conns: int) -> list[str]:
    example = MODELS[name][0]
    return ["--model", name, "--input-name", "image", "--shape", SHAPES[example], "--format", "binary",
            "--binary-output", "--connections", str(conns)]


def accuracy(port: int, names: list[str]) -> dict:
    import numpy as np
    import tritonclient.http as http

    data = np.load(HELDOUT)
    images = data["images"].astype(np.float32) / np.float32(255.0)  # the model takes image / 255
    labels = data["labels"]
    client = http.InferenceServerClient(f"127.0.0.1:{port}")
    out = {}
    preds = {}
    for name in names:
        got = []
        for i in range(0, len(images), 8):
            batch = images[i:i + 8]
            inp = http.InferInput("image", list(batch.shape), "FP32")
            inp.set_data_from_numpy(batch, binary_data=True)
            res = client.infer(name, [inp], outputs=[http.InferRequestedOutput("probabilities", binary_data=True)])
            got.append(res.as_numpy("probabilities").argmax(axis=1))
        preds[name] = np.concatenate(got)
        out[name] = {"top1": float((preds[name] == labels).mean()), "n": int(len(labels))}
    if "shapes_int8_openvino" in preds and "shapes_fp32_openvino" in preds:
        out["int8_agrees_with_fp32"] = float((preds["shapes_int8_openvino"] == preds["shapes_fp32_openvino"]).mean())
    return out


def rep_once(rep: int, args, workdir: Path, repo: Path, record) -> None:
    def inprocess():
        for name in MODELS:
            res = rb.run_inprocess(repo / name, max(50, int(args.duration * 30)), args.duration, "1x1,1x8")
            record({**res, "bench": "limit", "rep": rep, "model": name})
            rb.log(f"limit rep {rep} {name:24s} b1 p50 {res['latency_b1']['p50_us']:.0f} us; "
                   + ", ".join(f"{t['instances']}x{t['batch']}: {t['rows_per_s']:.0f}/s" for t in res["throughput"]))

    def served():
        srv = rb.ferry_server("ferry", repo, workdir)
        srv.start(timeout_s=180)
        try:
            for name in MODELS:
                rb.run_client(srv, client_args(name, 2), 1, 0)  # warm-up, not recorded
            for name in MODELS:
                for conns in args.conns:
                    res = rb.run_client(srv, client_args(name, conns), args.duration)
                    record({**res, "bench": "served", "rep": rep, "model": name, "conns": conns})
                    rb.log(f"serve rep {rep} {name:24s} c={conns} {res['throughput_rps']:>8.1f} req/s "
                           f"p50 {res['latency_us']['p50']:.0f} p99 {res['latency_us']['p99']:.0f} us "
                           f"errors {res['errors']}")
            if rep == 0:
                acc = accuracy(srv.port, [n for n in MODELS if MODELS[n][2] == "B14"])
                record({"bench": "accuracy", "rep": rep, **acc})
                rb.log(f"accuracy {acc}")
        finally:
            srv.stop()

    steps = [inprocess, served]
    shift = rep % len(steps)
    for step in steps[shift:] + steps[:shift]:
        step()


def summarize(results: dict) -> str:
    runs = results["runs"]

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def limit(model, key):
        rs = [r for r in runs if r["bench"] == "limit" and r["model"] == model]
        if key == "p50":
            return med([r["latency_b1"]["p50_us"] for r in rs])
        return med([t["rows_per_s"] for r in rs for t in r["throughput"] if f"{t['instances']}x{t['batch']}" == key])

    def served(model, conns, key):
        rs = [r for r in runs if r["bench"] == "served" and r["model"] == model and r["conns"] == conns]
        if key == "rps":
            return med([r["throughput_rps"] for r in rs])
        return med([r["latency_us"][key] for r in rs])

    lines = ["| model | backend | in-process p50 µs | served c=1 p50 / p99 µs | served c=1 ÷ in-process 1x1 "
             "| in-process rows/s 1x8 | served c=8 req/s | served c=8 ÷ in-process 1x8 |",
             "|---|---|---|---|---|---|---|---|"]
    hi = max(args_conns(results))
    for name, (_, backend, _) in MODELS.items():
        lp, l1, lt = limit(name, "p50"), limit(name, "1x1"), limit(name, "1x8")
        s1p50, s1p99, s1 = served(name, 1, "p50"), served(name, 1, "p99"), served(name, 1, "rps")
        s8 = served(name, hi, "rps")

        def f(x, d=0):
            return "–" if x is None else f"{x:,.{d}f}"
        ratio1 = f(s1 / l1, 2) if s1 and l1 else "–"
        ratio8 = f(s8 / lt, 2) if s8 and lt else "–"
        lines.append(f"| {name} | {backend} | {f(lp)} | {f(s1p50)} / {f(s1p99)} | {ratio1} | {f(lt)} "
                     f"| {f(s8, 1)} | {ratio8} |")
    acc = [r for r in runs if r["bench"] == "accuracy"]
    if acc:
        a = acc[0]
        lines.append("")
        lines.append("Held-out top-1 accuracy through the server: " + ", ".join(
            f"{k} {v['top1']:.3f}" for k, v in a.items() if isinstance(v, dict))
            + (f"; int8 agrees with fp32 on {a['int8_agrees_with_fp32']:.3f} of images"
               if "int8_agrees_with_fp32" in a else ""))
    return "\n".join(lines)


def args_conns(results: dict) -> list[int]:
    return sorted({r["conns"] for r in results["runs"] if r["bench"] == "served"}) or [1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 s runs, 1 rep")
    ap.add_argument("--duration", type=float, help="seconds per measured run (default 10; quick 2)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 3; quick 1)")
    ap.add_argument("--conns", default="1,8", help="served concurrencies")
    ap.add_argument("--out", default=str(rb.ROOT / "bench" / "results"))
    ap.add_argument("--summarize", metavar="RESULTS_JSON", help="print the table of an earlier run and exit")
    args = ap.parse_args()
    if args.summarize:
        print(summarize(json.loads(Path(args.summarize).read_text())))
        return 0
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.reps = args.reps or (1 if args.quick else 3)
    args.conns = [int(x) for x in args.conns.split(",") if x]
    for binary in (rb.FERRY, rb.LOAD_CLIENT, rb.INPROCESS):
        if not binary.exists():
            print(f"missing {binary}: run `bash scripts/build.sh release`", file=sys.stderr)
            return 2

    stamp = dt.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / f"backends-{stamp}.json"
    results = {"meta": {"started": stamp, "machine": rb.machine_info(), "args": vars(args),
                        "command": " ".join([sys.executable] + sys.argv)}, "runs": []}

    def record(entry: dict):
        results["runs"].append(entry)
        out_path.write_text(json.dumps(results, indent=1))

    with tempfile.TemporaryDirectory(prefix="ferry-bench-backends-") as tmp:
        workdir = Path(tmp)
        repo = make_repo(workdir)
        for rep in range(args.reps):
            rb.log(f"rep {rep + 1}/{args.reps}")
            rep_once(rep, args, workdir, repo, record)
    print(summarize(results))
    print(f"\nraw results: {out_path.relative_to(rb.ROOT) if out_path.is_relative_to(rb.ROOT) else out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
