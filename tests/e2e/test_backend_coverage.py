"""Which ONNX operator patterns each backend serves correctly: docs/backend-coverage.md's table.

tools/make_coverage_blocks.py (run by Debian's /usr/bin/python3, which has torch) writes one tiny model per
pattern per backend, each with PyTorch reference samples; Ferry serves that repository and checks every
version against its samples when it loads. Each (pattern, backend) is then:

  correct          the version is READY (it passed the reference check) and the sample sent through
                   tritonclient answers equal to PyTorch (numpy.allclose, atol 1e-4, rtol 1e-3);
  wrong numbers    refused by the reference check ("reference check failed" in the index reason), with
                   the max abs diff the reason gives (or the wrong output shape);
  fails to load    any other load error: the importer or the backend refused the model, or the sample
                   would not run at all (said so in the cell).

The test renders the table and compares it with the block between <!-- coverage:begin --> and
<!-- coverage:end --> in docs/backend-coverage.md. FERRY_UPDATE_COVERAGE=1 rewrites the block instead:

    FERRY_UPDATE_COVERAGE=1 FERRY_BINARY=build/release/ferry .venv/bin/pytest tests/e2e/test_backend_coverage.py -q
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from conftest import ADMIN_KEY, ROOT, FerryServer, _SERVERS, _stop_server

SYSTEM_PYTHON = "/usr/bin/python3"
GENERATOR = ROOT / "tools" / "make_coverage_blocks.py"
DOC = ROOT / "docs" / "backend-coverage.md"
BEGIN, END = "<!-- coverage:begin -->", "<!-- coverage:end -->"
BACKENDS = ("opencv_dnn", "openvino")
ATOL, RTOL = 1e-4, 1e-3
LOAD_TIMEOUT_S = 180


class SettledServer(FerryServer):
    """A server whose repository holds models that are meant to fail: ready once the first loads settle
    (/v2/health/ready answers 200 after them), not once every model is ready."""

    start_timeout_s = LOAD_TIMEOUT_S
    wait_for_every_model = False


def generate_blocks(out: Path) -> list[dict]:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import torch"], capture_output=True)
    assert probe.returncode == 0, (f"{SYSTEM_PYTHON} has no torch (Debian's python3-torch, "
                                   f"scripts/install-deps.sh): {probe.stderr.decode()[-300:]}")
    run = subprocess.run([SYSTEM_PYTHON, str(GENERATOR), "--out", str(out)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, f"{GENERATOR.name} failed:\n{run.stderr[-5000:]}"
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def coverage(tmp_path_factory):
    base = tmp_path_factory.mktemp("coverage")
    repo = base / "models"
    repo.mkdir()
    patterns = generate_blocks(repo)
    server = SettledServer(repo=repo, log_path=base / "ferry.log",
                           extra_args=["--admin-key", ADMIN_KEY, "--model-control-mode", "none"])
    server.start()
    _SERVERS.append(server)
    try:
        yield server, patterns, classify_all(server, repo, patterns)
    finally:
        _stop_server(server)


# ---------------------------------------------------------------------------------------- classifying

def repository_index(server) -> dict[str, dict]:
    r = requests.post(f"{server.base_url}/v2/repository/index", data="{}",
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    assert r.status_code == 200, r.text
    return {e["name"]: e for e in r.json()}


def read_sample(repo: Path, model: str, tensor: str, shape) -> np.ndarray:
    path = repo / model / "1" / "reference" / f"s0.{tensor}.bin"
    return np.fromfile(path, dtype="<f4").reshape(shape)


_DIFF = re.compile(r"max(?:imum)?[ _]?(?:abs(?:olute)?)?[ _]?(?:diff(?:erence)?|error|\|got - want\|)"
                   r"[^0-9\-+]{0,12}([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)", re.IGNORECASE)
_OPENCV_ERROR = re.compile(r"error: \(-?\d+:[^)]*\)\s*(.*?)(?:\s*\bin function\b|$)", re.DOTALL)


def max_abs_diff(reason: str) -> float | None:
    m = _DIFF.search(reason)
    return float(m.group(1)) if m else None


def short_cause(reason: str) -> str:
    """A stable one-line cause from a load error: the failing ONNX node and OpenCV's own message when
    there is one, without the "loading 'model' version 1: ..." prefixes and without paths."""
    node = re.search(r"Node \[(\w+)@", reason)
    m = _OPENCV_ERROR.search(reason)
    if m:
        text = m.group(1).strip()
        if not text:  # CV_CheckEQ style: the message is in the "(expected: ...)" part
            expected = re.search(r"\(expected: '([^']*)'\), where\s*(?:>\s*)*'[^']*' is (\S+)", reason)
            text = f"expects {expected.group(1)}, got {expected.group(2)}" if expected else "importer error"
        if node:
            text = f"{node.group(1)}: {text}"
    else:
        text = re.sub(r"^(?:loading '[^']*'(?: version \d+)?(?: on \w+)?: |opencv_dnn: |openvino: )+", "", reason)
        text = text.replace("OpenCV forward failed: ", "")
    text = " ".join(text.split())
    text = re.sub(r"/[^\s'\"]+/", "", text)  # no paths
    return text[:100] + ("..." if len(text) > 100 else "")


def refused_by_reference_check(reason: str) -> bool:
    """The backend ran the sample and its output differed (values or shape). A sample that fails to run
    (for example at batch 2) is a load failure: the model cannot serve that input at all."""
    return "reference check failed" in reason.lower()


def classify(server, repo: Path, entry: dict | None, model: str, pattern: dict) -> dict:
    if entry is None:
        return {"kind": "missing", "cell": "not in the index"}
    if entry["state"] == "READY":
        client = httpclient.InferenceServerClient(server.url)
        x = read_sample(repo, model, "x", pattern["input_shape"])
        want = read_sample(repo, model, "y", pattern["output_shape"])
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        try:
            got = client.infer(model, [inp], outputs=[httpclient.InferRequestedOutput("y", binary_data=True)]
                               ).as_numpy("y")
        except Exception as e:  # noqa: BLE001 - recorded in the table
            return {"kind": "infer fails", "cell": f"READY but inference fails: {short_cause(str(e))}"}
        finally:
            client.close()
        if got.shape != want.shape:
            return {"kind": "wrong served", "cell": f"READY but shape {list(got.shape)}, want {list(want.shape)}"}
        diff = float(np.abs(got.astype(np.float64) - want).max())
        if not np.allclose(got, want, atol=ATOL, rtol=RTOL):
            return {"kind": "wrong served", "cell": f"READY but wrong numbers (max abs diff {diff:.2g})"}
        return {"kind": "correct", "cell": "correct", "diff": diff}
    reason = entry.get("reason", "")
    if refused_by_reference_check(reason):
        diff = max_abs_diff(reason)
        if diff is not None:
            return {"kind": "wrong numbers", "cell": f"wrong numbers (max abs diff {diff:.2g})", "reason": reason}
        shape = re.search(r"has shape (\[[^\]]*\]), expected (\[[^\]]*\])", reason)
        detail = f"shape {shape.group(1)}, want {shape.group(2)}" if shape else short_cause(reason)
        return {"kind": "wrong numbers", "cell": f"wrong numbers ({detail})", "reason": reason}
    run = re.search(r"reference sample '[^']*' failed to run: (.*)", reason, re.DOTALL)
    if run:
        return {"kind": "fails to load", "reason": reason,
                "cell": f"fails to load: the batch-2 sample fails to run: {short_cause(run.group(1))}"}
    return {"kind": "fails to load", "cell": f"fails to load: {short_cause(reason)}", "reason": reason}


def classify_all(server, repo: Path, patterns: list[dict]) -> dict[tuple[str, str], dict]:
    index = repository_index(server)
    return {(p["pattern"], b): classify(server, repo, index.get(f"{p['pattern']}__{b}"), f"{p['pattern']}__{b}", p)
            for p in patterns for b in BACKENDS}


def render_table(patterns: list[dict], results: dict) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| pattern | what the block does | opset | `opencv_dnn` | `openvino` |", "|---|---|---|---|---|"]
    for p in patterns:
        row = [f"`{p['pattern']}`", p["description"], str(p["opset"])]
        row += [results[(p["pattern"], b)]["cell"] for b in BACKENDS]
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    counts = {b: sum(results[(p["pattern"], b)]["kind"] == "correct" for p in patterns) for b in BACKENDS}
    lines.append("")
    lines.append(f"Correct: `opencv_dnn` {counts['opencv_dnn']} of {len(patterns)}, "
                 f"`openvino` {counts['openvino']} of {len(patterns)}.")
    return "\n".join(lines)


def doc_block(text: str) -> str:
    assert BEGIN in text and END in text, f"{DOC} lacks the {BEGIN} ... {END} block"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


# ---------------------------------------------------------------------------------------------- tests

def test_the_coverage_table_matches_the_docs(coverage):
    _server, patterns, results = coverage
    table = render_table(patterns, results)
    text = DOC.read_text()
    if os.environ.get("FERRY_UPDATE_COVERAGE") == "1":
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        DOC.write_text(f"{before}{BEGIN}\n{table}\n{END}{after}")
        return
    assert doc_block(text) == table, (
        "docs/backend-coverage.md is out of date; regenerate it with FERRY_UPDATE_COVERAGE=1 (see its top).\n"
        f"Measured now:\n{table}")


def test_openvino_is_correct_on_every_pattern(coverage):
    _server, patterns, results = coverage
    wrong = {p["pattern"]: results[(p["pattern"], "openvino")] for p in patterns
             if results[(p["pattern"], "openvino")]["kind"] != "correct"}
    assert not wrong, json.dumps(wrong, indent=1)


def test_every_refusal_has_a_reason_and_no_path(coverage):
    server, patterns, results = coverage
    for key, r in results.items():
        assert r["kind"] != "missing", key
        if r["kind"] in ("wrong numbers", "fails to load"):
            assert r["reason"], key
            assert str(server.repo) not in r["reason"], (key, r["reason"])


def test_refused_versions_are_not_served(coverage):
    server, patterns, results = coverage
    refused = [f"{p}__{b}" for (p, b), r in results.items() if r["kind"] in ("wrong numbers", "fails to load")]
    for model in refused:
        status, _, _ = server.get(f"/v2/models/{model}/ready")
        assert status != 200, model


def test_no_ready_version_answers_differently_from_pytorch(coverage):
    """The reference check at load is the gate: whatever passed it must also answer right online."""
    _server, _patterns, results = coverage
    bad = {f"{p}__{b}": r["cell"] for (p, b), r in results.items() if r["kind"] in ("wrong served", "infer fails")}
    assert not bad, bad
