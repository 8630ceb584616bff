#!/usr/bin/env python3
"""Runs B7, B9 and B10 (language models through llama.cpp, shared/benchmarks.md) and prints their ratios.

    .venv/bin/python bench/run_llm_benchmarks.py            # 5 interleaved reps x 3 runs each (~5 min idle)
    .venv/bin/python bench/run_llm_benchmarks.py --quick    # 1 rep x 2 runs: a smoke test (~1 min idle)
    .venv/bin/python bench/run_llm_benchmarks.py --model other.gguf      # another GGUF for every contender
    .venv/bin/python bench/run_llm_benchmarks.py --summarize bench/results/llm-<stamp>.json   # re-print

Needs build/release/ferry (built with llama.cpp). llama.cpp's own tools (llama-bench, llama-server) are
built by scripts/build-llama-tools.sh when missing, and the default model, bench/results/bench-llm.gguf
(random weights, dim 512, 8 layers, F16, 52 MB), by tools/make_bench_llm.py when missing. Standard
library only (runs under .venv or /usr/bin/python3).

Contenders, one at a time on loopback, in an order rotated per rep (interleaved); all use the same GGUF,
2 threads (generation and batch), batch 512 (n_batch = n_ubatch), 4 slots x 2048 context each:
  ferry         Ferry, backend llama_cpp, parameters {slots: 4, context_per_slot: 2048, batch_tokens: 512}
  ferry-1slot   the same with slots: 1 (the sequential single-stream baseline of B10)
  llama-server  llama-server -t 2 -tb 2 -np 4 -c 8192 -b 512 -ub 512 (n_ctx_slot 2048, kv_unified off,
                as Ferry) --no-webui; requests send cache_prompt: false
  llama-bench   llama-bench -t 2 -b 512 -ub 512 -p 512 -n 128 (pp512 and tg128: the limits)
The client (bench/llm_client.py, raw sockets, one new connection per request for every server) streams
POST /v1/completions with temperature 0, ignore_eos, stream_options.include_usage, and times each
Server-Sent Event on arrival. This file runs the benchmarks, writes the results and prints the table.

  B7  single stream: short prompt, 128 output tokens. decode t/s = (tokens - 1) / (t_last - t_first)
      (t_first/t_last: arrival of the first/last token event), ITL p50 = median gap between token
      events; vs llama-bench tg128 (the limit) and llama-server. Per-token overhead = 1e6/t/s - 1e6/tg128.
  B9  TTFT: a prompt of exactly 512 tokens (checked: Ferry's usage.prompt_tokens, llama-server's
      timings.prompt_n), max_tokens 1, c=1, a different prompt every run (no prompt cache can help);
      TTFT = request sent (before connect) -> first token event. Limit = 512 / pp512.
  B10 four streams x 128 tokens, short distinct prompts, Poisson arrivals (mean gap 50 ms, seeded per
      rep and run; the same schedule for every contender). aggregate t/s = all tokens / (last token -
      first request sent); TPOT = (t_last - t_first) / (tokens - 1) per stream. ferry vs ferry-1slot
      under the same load (it runs them one after another) and vs llama-server -np 4. Mean batch width:
      ferry_llm_decode_step_sequences (sum/count) from Ferry's /metrics over the B10 runs.

The bench model has random weights and a character vocabulary with 256 byte tokens: its greedy output
is noise that includes lone bytes >= 0x80, i.e. invalid UTF-8. llama-server (this release) answers those
with an error ("does not match the expected Content-only format"), so every request, to both servers,
carries an OpenAI-style logit_bias of -100 on the byte tokens 0x80..0xFF, read from the GGUF. Ferry
honours logit_bias as llama-server does, so both generate the same tokens. Token counts come from usage,
and the number of token events is reported next to them (Ferry holds an incomplete UTF-8 sequence until
the next token, so an event can carry two tokens).

Raw results go to bench/results/llm-<UTC stamp>.json (gitignored).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402  (the shared server and machine helpers)
import llm_client  # noqa: E402
from llm_client import (  # noqa: E402  (the contenders' processes and the timing client)
    BATCH, CTX_PER_SLOT, DEFAULT_MODEL, LLAMA_BENCH, LLAMA_SERVER, ROOT, SLOTS, THREADS, LlmServer, Window,
    banned_byte_tokens, completion_body, ensure_model, ensure_tools, ferry_server, llama_server, llama_tokenizer,
    make_repo, run_streams, scrape_llm_metrics, version_line)

GEN_TOKENS = 128
B9_PROMPT_TOKENS = 512
B10_STREAMS = 4
B10_MEAN_GAP_S = 0.050
B7_PROMPT = "Once upon a time, in a land far away, there lived"
B10_PROMPTS = ["The weather today is", "A list of prime numbers:", "def fibonacci(n):", "Dear Sir or Madam,"]
PROMPT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


# ---------------------------------------------------------------------------------- the benchmarks

def b9_prompts(tokenize, n: int, seed: int) -> list[str]:
    """n distinct prompts of exactly B9_PROMPT_TOKENS tokens (BOS included), fitted with llama-server's /tokenize."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = "".join(rng.choice(PROMPT_CHARS) for _ in range(B9_PROMPT_TOKENS - 1))
        for _ in range(200):
            count = tokenize(text)
            if count == B9_PROMPT_TOKENS:
                break
            if count > B9_PROMPT_TOKENS:
                text = text[:-(count - B9_PROMPT_TOKENS)]
            else:
                text += "".join(rng.choice(PROMPT_CHARS) for _ in range(B9_PROMPT_TOKENS - count))
        else:
            raise RuntimeError("could not fit a prompt of exactly 512 tokens")
        out.append(text)
    return out


def b10_offsets(seed: int) -> list[float]:
    rng = random.Random(seed)
    t, out = 0.0, []
    for i in range(B10_STREAMS):
        out.append(round(t, 4))
        t += rng.expovariate(1.0 / B10_MEAN_GAP_S)
    return out


def warm_up(server: LlmServer, bias: dict, prompts512: list[str]) -> None:
    run_streams(server.port, "/v1/completions", [completion_body("warm up", 32, bias)])
    run_streams(server.port, "/v1/completions", [completion_body(prompts512[0], 1, bias)])


def serve_contender(name: str, server: LlmServer, rep: int, args, plan: dict, record) -> None:
    bias = plan["bias"]
    server.start()
    try:
        warm_up(server, bias, plan["warm512"])
        if "B7" in args.only:
            for run in range(args.runs):
                with Window(server) as w:
                    res, _ = run_streams(server.port, "/v1/completions", [completion_body(B7_PROMPT, GEN_TOKENS, bias)])
                r = res[0]
                record({"bench": "B7", "contender": name, "rep": rep, "run": run, "cpu": w.cpu, **r})
                rb.log(f"B7  rep {rep} run {run} {name:13s} {r.get('decode_tps') or 0:8.1f} t/s  ITL p50 "
                       f"{r.get('itl_p50_us') or 0:7.0f} us  tokens {r['completion_tokens']} events "
                       f"{r['token_events']}{'  ERROR ' + r['error'] if r['error'] else ''}"
                       f"{'  PROBLEMS ' + '; '.join(r['problems']) if r['problems'] else ''}")
        if "B9" in args.only and name != "ferry-1slot":  # B9 compares Ferry as configured with llama-server
            for run in range(args.runs):
                prompt = plan["b9"][rep * args.runs + run]
                with Window(server) as w:
                    res, _ = run_streams(server.port, "/v1/completions", [completion_body(prompt, 1, bias)])
                r = res[0]
                r.pop("itl_us", None)
                prompt_n = (r["timings"] or {}).get("prompt_n")
                record({"bench": "B9", "contender": name, "rep": rep, "run": run, "cpu": w.cpu,
                        "timings_prompt_n": prompt_n, **r})
                rb.log(f"B9  rep {rep} run {run} {name:13s} TTFT {1e3 * (r['ttft_s'] or 0):8.2f} ms  prompt_tokens "
                       f"{r['prompt_tokens']} timings.prompt_n {prompt_n}"
                       f"{'  ERROR ' + r['error'] if r['error'] else ''}")
        if "B10" in args.only:
            before = scrape_llm_metrics(server) if name.startswith("ferry") else None
            for run in range(args.runs):
                offsets = b10_offsets(args.seed + 1000 * rep + run)
                bodies = [completion_body(p, GEN_TOKENS, bias) for p in B10_PROMPTS]
                with Window(server) as w:
                    res, t0 = run_streams(server.port, "/v1/completions", bodies, offsets)
                for r in res:
                    r.pop("itl_us", None)
                tokens = sum(r["completion_tokens"] or 0 for r in res)
                lasts = [r["t_last_s"] for r in res if r["t_last_s"] is not None]
                wall = max(lasts) - min(r["t_send_s"] for r in res) if lasts else None
                agg = tokens / wall if wall else None
                record({"bench": "B10", "contender": name, "rep": rep, "run": run, "cpu": w.cpu, "offsets_s": offsets,
                        "tokens": tokens, "wall_s": round(wall, 4) if wall else None,
                        "aggregate_tps": round(agg, 3) if agg else None, "streams": res})
                tpots = [r.get("tpot_ms") for r in res if r.get("tpot_ms")]
                errs = [r["error"] for r in res if r["error"]]
                rb.log(f"B10 rep {rep} run {run} {name:13s} {agg or 0:8.1f} t/s aggregate  TPOT p50 "
                       f"{statistics.median(tpots) if tpots else 0:6.2f} ms  tokens {tokens}"
                       f"{'  ERRORS ' + '; '.join(errs) if errs else ''}")
            if before is not None:
                after = scrape_llm_metrics(server)
                delta = {k: round(after.get(k, 0) - before.get(k, 0), 6) for k in after}
                n = delta.get("ferry_llm_decode_step_sequences_count", 0)
                width = delta.get("ferry_llm_decode_step_sequences_sum", 0) / n if n else None
                record({"bench": "B10-metrics", "contender": name, "rep": rep, "metrics_delta": delta,
                        "mean_decode_step_sequences": round(width, 3) if width else None})
                rb.log(f"B10 rep {rep} {name}: mean decode-step sequences {width or 0:.2f} over {n:.0f} steps")
    finally:
        server.stop()


def llama_bench_contender(model: Path, rep: int, args, record) -> None:
    cmd = [str(LLAMA_BENCH), "-m", str(model), "-t", str(THREADS), "-b", str(BATCH), "-ub", str(BATCH),
           "-p", str(B9_PROMPT_TOKENS), "-n", str(GEN_TOKENS), "-r", str(max(args.runs, 2)), "-o", "json"]
    out, cpu = rb.measure(None, cmd, 3600)
    for test in json.loads(out):
        kind = "pp512" if test.get("n_gen", 0) == 0 else "tg128"
        samples = test.get("samples_ts") or [test.get("avg_ts")]
        entry = {"bench": "llama-bench", "contender": "llama-bench", "rep": rep, "test": kind, "cpu": cpu,
                 "median_ts": round(statistics.median(samples), 3), "samples_ts": samples,
                 "avg_ts": test.get("avg_ts"), "stddev_ts": test.get("stddev_ts"),
                 "flash_attn": test.get("flash_attn"), "n_threads": test.get("n_threads"),
                 "n_batch": test.get("n_batch"), "n_ubatch": test.get("n_ubatch"),
                 "build_commit": test.get("build_commit"), "cpu_info": test.get("cpu_info")}
        record(entry)
        rb.log(f"llama-bench rep {rep} {kind}: {entry['median_ts']:.1f} t/s (samples {samples})")


# ------------------------------------------------------------------------------------- summarising

def summarize(results: dict) -> str:
    runs = results["runs"]
    reps = sorted({r["rep"] for r in runs if "rep" in r})

    def per_rep(bench, contender, key, agg=statistics.median):
        """{rep: median over that rep's runs}."""
        out = {}
        for rep in reps:
            vals = [r.get(key) for r in runs if r["bench"] == bench and r["contender"] == contender
                    and r.get("rep") == rep and r.get(key) is not None]
            if vals:
                out[rep] = agg(vals)
        return out

    def b10_tpot(contender):
        out = {}
        for rep in reps:
            vals = [s["tpot_ms"] for r in runs if r["bench"] == "B10" and r["contender"] == contender
                    and r["rep"] == rep for s in r["streams"] if s.get("tpot_ms")]
            if vals:
                out[rep] = statistics.median(vals)
        return out

    def bench_ts(test):
        return {r["rep"]: r["median_ts"] for r in runs if r["bench"] == "llama-bench" and r["test"] == test}

    def ratio(a, b, f=lambda x, y: x / y):
        return {rep: f(a[rep], b[rep]) for rep in a if rep in b and b[rep]}

    def show(d, digits=1):
        return rb.fmt_mmm(rb.mmm(list(d.values())), digits) if len(d) > 1 else \
            (rb.fmt_num(next(iter(d.values())), digits) if d else "n/a")

    def signed(d):
        m, lo, hi = rb.mmm(list(d.values()))
        if m is None:
            return "n/a"
        return f"{m:+.2f}" + (f" [{lo:+.2f}–{hi:+.2f}]" if len(d) > 1 else "")

    def judge(d, target, higher=True):
        return rb.verdict(rb.med(list(d.values())), target, higher)

    tg, pp = bench_ts("tg128"), bench_ts("pp512")
    f7, s7 = per_rep("B7", "ferry", "decode_tps"), per_rep("B7", "llama-server", "decode_tps")
    f7_1 = per_rep("B7", "ferry-1slot", "decode_tps")
    fi, si = per_rep("B7", "ferry", "itl_p50_us"), per_rep("B7", "llama-server", "itl_p50_us")
    over_f = ratio(f7, tg, lambda x, y: 1e6 / x - 1e6 / y)
    over_s = ratio(s7, tg, lambda x, y: 1e6 / x - 1e6 / y)
    lim9 = {rep: 1e3 * B9_PROMPT_TOKENS / v for rep, v in pp.items()}
    f9 = {k: v * 1e3 for k, v in per_rep("B9", "ferry", "ttft_s").items()}
    s9 = {k: v * 1e3 for k, v in per_rep("B9", "llama-server", "ttft_s").items()}
    f10, s10 = per_rep("B10", "ferry", "aggregate_tps"), per_rep("B10", "llama-server", "aggregate_tps")
    o10 = per_rep("B10", "ferry-1slot", "aggregate_tps")
    ft, st, ot = b10_tpot("ferry"), b10_tpot("llama-server"), b10_tpot("ferry-1slot")
    width = {r["rep"]: r["mean_decode_step_sequences"] for r in runs
             if r["bench"] == "B10-metrics" and r["contender"] == "ferry" and r["mean_decode_step_sequences"]}

    lines = [
        "| # | measure | Ferry | llama-server | limit / baseline | Ferry ÷ limit | Ferry ÷ llama-server | target |",
        "|---|---|---|---|---|---|---|---|",
        f"| B7 | decode t/s, 1 stream, 128 tokens | {show(f7)} | {show(s7)} | {show(tg)} (llama-bench tg128) "
        f"| {show(ratio(f7, tg), 3)} {judge(ratio(f7, tg), 0.97)} | {show(ratio(f7, s7), 3)} {judge(ratio(f7, s7), 1.0)} "
        f"| ≥0.97× limit, ≥1.0× llama-server |",
        f"| B7 | ITL p50, µs | {show(fi, 0)} | {show(si, 0)} | {show({k: 1e6 / v for k, v in tg.items()}, 0)} "
        f"(1e6 / tg128) | | {show(ratio(fi, si), 3)} {judge(ratio(fi, si), 1.03, False)} | within 3 % of llama-server |",
        f"| B7 | overhead per token vs llama-bench, µs | {show(over_f, 0)} {judge(over_f, 50, False)} | {show(over_s, 0)} "
        f"| 0 | | | ≤ 50 µs |",
        f"| B9 | TTFT, 512-token prompt, c=1, ms | {show(f9, 2)} | {show(s9, 2)} | {show(lim9, 2)} (512 / pp512) "
        f"| {signed(ratio(f9, lim9, lambda x, y: x - y))} ms (Ferry − limit) "
        f"{judge(ratio(f9, lim9, lambda x, y: x - y), 5, False)} "
        f"| {show(ratio(f9, s9), 3)} {judge(ratio(f9, s9), 1.02, False)} | ≤ limit + 5 ms, ≤1.02× llama-server |",
        f"| B10 | aggregate t/s, 4 streams × 128, Poisson 50 ms | {show(f10)} | {show(s10)} (-np 4) "
        f"| {show(o10)} (Ferry slots: 1) | {show(ratio(f10, o10), 2)} {judge(ratio(f10, o10), 1.8)} "
        f"| {show(ratio(f10, s10), 3)} {judge(ratio(f10, s10), 0.95)} | ≥1.8× single stream, ≥0.95× llama-server |",
        f"| B10 | TPOT p50, ms | {show(ft, 2)} | {show(st, 2)} | {show(ot, 2)} (Ferry slots: 1) "
        f"| {show(ratio(ft, ot), 2)} {judge(ratio(ft, ot), 2.2, False)} | {show(ratio(ft, st), 3)} "
        f"| ≤2.2× single stream |",
        f"| B10 | mean batch width (ferry_llm_decode_step_sequences) | {show(width, 2)} | | | | | |",
    ]
    cpu_tok = {c: per_rep_cpu(runs, reps, c) for c in ("ferry", "llama-server")}
    lines.append(f"| (B7) | server CPU per output token, µs (both cores count) | {show(cpu_tok['ferry'], 0)} "
                 f"| {show(cpu_tok['llama-server'], 0)} | | | {show(ratio(cpu_tok['ferry'], cpu_tok['llama-server']), 2)} | |")
    if f7_1:
        lines.append(f"| (B7) | decode t/s, Ferry with slots: 1 | {show(f7_1)} | | {show(tg)} | "
                     f"{show(ratio(f7_1, tg), 3)} | | |")
    lines.append("")
    lines.append(f"Medians over runs within a rep, then median [min–max] over {len(reps)} rep(s); ratios per rep. "
                 f"Other processes used {checks_other_cpu(runs)} cores (median [max]) during the measurements.")
    lines += [""] + checks(runs)
    return "\n".join(lines)


def per_rep_cpu(runs, reps, contender) -> dict:
    """Server CPU time per generated token in B7, median over each rep's runs."""
    out = {}
    for rep in reps:
        vals = [r["cpu"]["server_cpu_s"] * 1e6 / r["completion_tokens"] for r in runs
                if r["bench"] == "B7" and r["contender"] == contender and r["rep"] == rep and r["completion_tokens"]]
        if vals:
            out[rep] = statistics.median(vals)
    return out


def checks_other_cpu(runs) -> str:
    vals = [r["cpu"]["other_cpu_cores"] for r in runs if r.get("cpu")]
    return f"{statistics.median(vals):.2f} [{max(vals):.2f}]" if vals else "n/a"


def checks(runs) -> list[str]:
    """What the answers said besides timing: token counts, framing, errors, agreement."""
    out = ["Checks:"]
    streams = []
    for r in runs:
        if r["bench"] in ("B7", "B9"):
            streams.append((r["bench"], r["contender"], r))
        elif r["bench"] == "B10":
            streams += [("B10", r["contender"], s) for s in r["streams"]]
    for contender in sorted({c for _, c, _ in streams}):
        mine = [(b, s) for b, c, s in streams if c == contender]
        want = {"B7": GEN_TOKENS, "B9": 1, "B10": GEN_TOKENS}
        wrong_n = [s["completion_tokens"] for b, s in mine if s["completion_tokens"] != want[b]]
        errors = [s["error"] for _, s in mine if s["error"]]
        problems = sorted({p for _, s in mine for p in s["problems"]})
        b9 = [s for b, s in mine if b == "B9"]
        wrong_prompt = [(s["prompt_tokens"], s.get("timings_prompt_n")) for s in b9
                        if s["prompt_tokens"] != B9_PROMPT_TOKENS or
                        (s.get("timings_prompt_n") is not None and s["timings_prompt_n"] != B9_PROMPT_TOKENS)]
        gen = [s for b, s in mine if b in ("B7", "B10") and s["completion_tokens"]]
        events = sum(s["token_events"] for s in gen)
        tokens = sum(s["completion_tokens"] for s in gen)
        pred = sorted({(s["timings"] or {}).get("predicted_n") for s in gen if s.get("timings")} - {None})
        lags = [s["final_lag_us"] for s in gen if s.get("final_lag_us") is not None]
        b7_texts = {s["text_sha1"] for b, s in mine if b == "B7" and not s["error"]}
        silent = [1e3 * (s["ttft_s"] - s["headers_s"]) for b, s in mine
                  if b == "B9" and s["ttft_s"] is not None and s["headers_s"] is not None]
        out.append(
            f"- {contender}: {len(mine)} streams; {len(errors)} errors{(' (' + errors[0] + ')') if errors else ''}; "
            f"completion_tokens other than asked: {len(wrong_n)}{(' ' + str(wrong_n[:5])) if wrong_n else ''}; "
            f"B9 prompts not 512 tokens: {len(wrong_prompt)}{(' ' + str(wrong_prompt[:3])) if wrong_prompt else ''}; "
            f"token events / tokens {events}/{tokens}; timings.predicted_n for 128 tokens: {pred}; "
            f"last token → finish event median {statistics.median(lags) if lags else 0:.0f} µs; "
            f"B9 response headers → first token median {statistics.median(silent) if silent else 0:.1f} ms; "
            f"distinct B7 texts {len(b7_texts)}; framing problems: {problems or 'none'}")
    b10 = {}
    for r in runs:
        if r["bench"] == "B10":
            for i, s in enumerate(r["streams"]):
                b10.setdefault(r["contender"], {}).setdefault(i, set()).add(s["text_sha1"])
    if "ferry" in b10 and "ferry-1slot" in b10:
        same = sum(1 for i in b10["ferry"] if b10["ferry"][i] == b10["ferry-1slot"].get(i))
        out.append(f"- B10 greedy texts, Ferry 4 slots (batched) vs 1 slot (alone): {same} of {len(b10['ferry'])} "
                   f"prompts identical in every run")
    heads = {r["contender"]: r["text_head"] for r in runs if r["bench"] == "B7" and not r["error"]}
    if "ferry" in heads and "llama-server" in heads:
        a, b = heads["ferry"], heads["llama-server"]
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        out.append(f"- B7 greedy text, Ferry vs llama-server: the first {k} characters agree "
                   f"(Ferry {a[:24]!r}…, llama-server {b[:24]!r}…; both get the same byte-token ban)")
    return out


# -------------------------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 rep x 2 runs")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 5; quick 1)")
    ap.add_argument("--runs", type=int, help="runs of each benchmark per contender per rep (default 3; quick 2)")
    ap.add_argument("--model", help=f"GGUF for every contender (default {DEFAULT_MODEL.relative_to(ROOT)}, made "
                                    "by tools/make_bench_llm.py when missing)")
    ap.add_argument("--only", default="B7,B9,B10")
    ap.add_argument("--ferry-arg", action="append", default=[],
                    help="extra flag for ferry serve, e.g. --ferry-arg=--http-thread-count=1 (repeatable)")
    ap.add_argument("--seed", type=int, default=20261128, help="Poisson arrivals and B9 prompts")
    ap.add_argument("--max-load", type=float, default=1.0, help="wait for the 1-min load average below this")
    ap.add_argument("--max-wait", type=float, help="seconds to wait for a quiet machine (default 1200; quick 60)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--summarize", metavar="RESULTS_JSON", help="print the table of an earlier run and exit")
    args = ap.parse_args()
    llm_client.FERRY_EXTRA_ARGS.extend(args.ferry_arg)
    if args.summarize:
        print(summarize(json.loads(Path(args.summarize).read_text())))
        return 0
    args.reps = args.reps or (1 if args.quick else 5)
    args.runs = args.runs or (2 if args.quick else 3)
    args.max_wait = args.max_wait if args.max_wait is not None else (60 if args.quick else 1200)
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not rb.FERRY.exists():
        print(f"missing {rb.FERRY}: run `bash scripts/build.sh release`", file=sys.stderr)
        return 2
    model = Path(args.model).resolve() if args.model else DEFAULT_MODEL
    ensure_tools()
    ensure_model(model, bool(args.model))
    banned = banned_byte_tokens(model)
    bias = {str(i): -100 for i in banned}  # sent to both servers, so that both generate the same tokens

    stamp = dt.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / f"llm-{stamp}.json"
    release = ROOT / "third_party" / "llama.cpp" / ".release"
    meta = {"started": stamp, "machine": rb.machine_info(), "args": {**vars(args), "only": sorted(args.only)},
            "command": " ".join([sys.executable] + sys.argv), "model": str(model),
            "model_bytes": model.stat().st_size, "model_sha1": hashlib.sha1(model.read_bytes()).hexdigest()[:16],
            "banned_tokens": len(banned), "llama_release": release.read_text().strip() if release.exists() else None,
            "llama_server_version": version_line([str(LLAMA_SERVER), "--version"]),
            "niceness": os.nice(0), "threads": THREADS, "batch": BATCH, "slots": SLOTS,
            "context_per_slot": CTX_PER_SLOT}
    results = {"meta": meta, "runs": []}

    def record(entry: dict):
        results["runs"].append(entry)
        out_path.write_text(json.dumps(results, indent=1))

    meta["load"] = rb.wait_for_load(args.max_load, args.max_wait, "start")
    with tempfile.TemporaryDirectory(prefix="ferry-bench-llm-") as tmp:
        workdir = Path(tmp)
        repo4, repo1 = make_repo(workdir, model, SLOTS), make_repo(workdir, model, 1)
        # B9 prompts: exactly 512 tokens by llama.cpp's own tokenizer, one per (rep, run), plus a warm-up one.
        probe = llama_server(model, workdir)
        probe.name = "llama-server-tokenize"
        probe.start()
        try:
            prompts = b9_prompts(llama_tokenizer(probe), args.reps * args.runs + 1, args.seed)
        finally:
            probe.stop()
        plan = {"bias": bias, "b9": prompts[1:], "warm512": prompts[:1]}

        contenders = {
            "ferry": lambda rep: serve_contender("ferry", ferry_server("ferry", repo4, workdir), rep, args, plan, record),
            "llama-server": lambda rep: serve_contender("llama-server", llama_server(model, workdir), rep, args,
                                                        plan, record),
            "ferry-1slot": lambda rep: serve_contender("ferry-1slot", ferry_server("ferry-1slot", repo1, workdir),
                                                       rep, args, plan, record),
            "llama-bench": lambda rep: llama_bench_contender(model, rep, args, record),
        }
        order = list(contenders)
        for rep in range(args.reps):
            idle = rb.wait_for_idle(0.3, args.max_wait if rep else 0)
            record({"bench": "rep-start", "rep": rep, **idle})
            rb.log(f"rep {rep + 1}/{args.reps} (others using {idle['idle_busy_cores']:.2f} cores, "
                   f"load {idle['loadavg']:.2f})")
            shift = rep % len(order)
            for name in order[shift:] + order[:shift]:
                contenders[name](rep)
        meta["finished"] = dt.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
        out_path.write_text(json.dumps(results, indent=1))
    print(summarize(results))
    print(f"\nraw results: {out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
