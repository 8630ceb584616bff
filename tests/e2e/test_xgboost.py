"""The xgboost backend end to end: the example models (tools/make_xgboost_models.py) served by the ferry
binary and asked through tritonclient, against XGBoost's own Python predictions from the same files.

(a) binary, multi-class and regression predictions equal xgboost.Booster.predict within 1e-6, with
    missing values (NaN), one row at a time, in batches, and under concurrent load (dynamic batching);
(b) the served models keep the held-out scores the script measured;
(c) wrong feature counts, non-numeric and infinite values are 400 with a JSON error;
(d) hot reload: versions whose model.json is truncated, of another format, from a newer XGBoost or with
    a tree that would crash XGBoost are refused with their reason while version 1 keeps serving; a
    margin model whose reference samples hold probabilities is refused by the reference check.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
import xgboost as xgb

from conftest import ADMIN_KEY, EXAMPLES, ROOT, repository_index, wait_for_entry

TOLERANCE = 1e-6
SETTLE_TIMEOUT_S = 30.0
MODELS = {"fraud_xgb": ("model.json", "probability", 1), "segment_xgb": ("model.ubj", "probabilities", 4),
          "demand_xgb": ("model.json", "units", 1)}


def load_script():
    spec = importlib.util.spec_from_file_location("make_xgboost_models", ROOT / "tools" / "make_xgboost_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_predict(model_dir: Path, filename: str, x: np.ndarray, margin: bool = False) -> np.ndarray:
    booster = xgb.Booster(model_file=str(model_dir / "1" / filename))
    out = booster.predict(xgb.DMatrix(x, missing=np.nan), output_margin=margin, strict_shape=True)
    return out.astype(np.float32).reshape(len(x), -1)


def served(client, model: str, x: np.ndarray, output: str, version: str = "") -> tuple[np.ndarray, str]:
    inp = httpclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x.astype(np.float32), binary_data=True)
    result = client.infer(model, [inp], model_version=version,
                          outputs=[httpclient.InferRequestedOutput(output, binary_data=True)])
    return result.as_numpy(output), result.get_response()["model_version"]


def noise_rows(features: int, n: int, seed: int) -> np.ndarray:
    """Rows of noise, whatever the model's features mean, with about 15% of the values missing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, (n, features)).astype(np.float32)
    x[rng.random((n, features)) < 0.15] = np.nan
    return x


def model_rows(model: str, n: int, seed: int) -> np.ndarray:
    """The model's reference rows (real-looking values) and perturbed copies of them, some values NaN."""
    ref = json.loads((ROOT / "tools" / "reference" / f"xgboost_{model}.json").read_text())
    base = np.array([[np.nan if v is None else v for v in row] for row in ref["input"]], dtype=np.float32)
    rng = np.random.default_rng(seed)
    rows = base[rng.integers(0, len(base), n)]
    rows = rows * rng.uniform(0.7, 1.3, rows.shape).astype(np.float32)
    rows[rng.random(rows.shape) < 0.1] = np.nan
    return rows.astype(np.float32)


@pytest.fixture(scope="module")
def client(ferry):
    c = httpclient.InferenceServerClient(url=ferry.url, network_timeout=30.0)
    yield c
    c.close()


# ------------------------------------------------------------------------------------------------ (a)

@pytest.mark.parametrize("model", sorted(MODELS))
def test_served_predictions_equal_xgboost_python(client, model):
    filename, output, width = MODELS[model]
    x = model_rows(model, 200, seed=len(model))
    want = python_predict(EXAMPLES / model, filename, x)
    assert want.shape == (200, width)
    for batch in (1, 13, 64):
        got = np.concatenate([served(client, model, x[i:i + batch], output)[0] for i in range(0, 64, batch)])
        assert got.shape == (len(got), width)
        np.testing.assert_allclose(got, want[:len(got)], rtol=0, atol=TOLERANCE, err_msg=f"batch {batch}")
    # Rows of pure noise too (far outside the training range), and the all-missing row.
    noise = noise_rows(x.shape[1], 64, seed=7)
    noise[0, :] = np.nan
    got, _ = served(client, model, noise, output)
    np.testing.assert_allclose(got, python_predict(EXAMPLES / model, filename, noise), rtol=0, atol=TOLERANCE)


def test_concurrent_requests_are_batched_without_changing_answers(ferry):
    model, (filename, output, _) = "fraud_xgb", MODELS["fraud_xgb"]
    x = model_rows(model, 256, seed=11)
    want = python_predict(EXAMPLES / model, filename, x)

    def one(i):
        c = httpclient.InferenceServerClient(url=ferry.url, network_timeout=30.0)
        try:
            return served(c, model, x[i:i + 1], output)[0][0]
        finally:
            c.close()

    before = counters(ferry, model)
    with ThreadPoolExecutor(max_workers=16) as pool:
        got = np.array(list(pool.map(one, range(len(x)))))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
    after = counters(ferry, model)
    rows = after["ferry_inference_count_total"] - before["ferry_inference_count_total"]
    runs = after["ferry_inference_exec_count_total"] - before["ferry_inference_exec_count_total"]
    assert rows == len(x) and runs < rows, (rows, runs)  # some requests shared a batch


def counters(server, model: str) -> dict:
    """The model's inference and execution counters from /metrics."""
    _, _, body = server.get("/metrics")
    out = {}
    for line in body.decode().splitlines():
        name, _, rest = line.partition("{")
        if name in ("ferry_inference_count_total", "ferry_inference_exec_count_total") and f'model="{model}"' in rest:
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def test_multiclass_gives_every_class(client):
    x = model_rows("segment_xgb", 10, seed=3)
    got, _ = served(client, "segment_xgb", x, "probabilities")
    assert got.shape == (10, 4)
    np.testing.assert_allclose(got.sum(axis=1), np.ones(10), atol=1e-5)


# ------------------------------------------------------------------------------------------------ (b)

def predict_all(client, model: str, x: np.ndarray) -> np.ndarray:
    output = MODELS[model][1]
    return np.concatenate([served(client, model, x[i:i + 64], output)[0] for i in range(0, len(x), 64)])


def test_served_models_keep_the_held_out_scores_the_script_measured(client):
    script = load_script()
    report = json.loads((ROOT / "tools" / "data" / "xgboost_report.json").read_text())

    x, y, _, te, _ = script.fraud_split()
    p = predict_all(client, "fraud_xgb", x[te])[:, 0]
    assert abs(script.roc_auc(y[te], p) - report["fraud_xgb"]["roc_auc"]) < 1e-6
    assert report["fraud_xgb"]["roc_auc"] > 0.75  # honest, not great: the data's own ceiling is ~0.81

    x, y, _, te = script.segment_split()
    p = predict_all(client, "segment_xgb", x[te])
    assert abs(float((p.argmax(axis=1) == y[te]).mean()) - report["segment_xgb"]["accuracy"]) < 1e-9

    x, y, _, te = script.demand_split()
    p = predict_all(client, "demand_xgb", x[te])[:, 0]
    assert abs(script.rmse(p, y[te]) - report["demand_xgb"]["rmse"]) < 1e-3
    assert report["demand_xgb"]["rmse"] < report["demand_xgb"]["seasonal_naive_rmse"]


# ------------------------------------------------------------------------------------------------ (c)

def post_infer(server, model: str, body: dict):
    return requests.post(f"{server.base_url}/v2/models/{model}/infer", json=body, timeout=10)


def test_wrong_feature_counts_and_non_numeric_values_are_400_json(ferry, client):
    short = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 11], "data": [0.5] * 11}]}
    r = post_infer(ferry, "fraud_xgb", short)
    assert r.status_code == 400 and "[1,11]" in r.json()["error"], r.text
    text = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 12], "data": [0.5] * 11 + ["high"]}]}
    r = post_infer(ferry, "fraud_xgb", text)
    assert r.status_code == 400 and "needs a number" in r.json()["error"], r.text
    wrong_type = {"inputs": [{"name": "features", "datatype": "BYTES", "shape": [1, 12], "data": ["1"] * 12}]}
    r = post_infer(ferry, "fraud_xgb", wrong_type)
    assert r.status_code == 400 and "error" in r.json(), r.text
    # An infinity cannot be written in JSON; it comes in binary, and the backend refuses it.
    x = model_rows("fraud_xgb", 2, seed=5)
    x[1, 4] = np.inf
    with pytest.raises(Exception) as e:
        served(client, "fraud_xgb", x, "probability")
    assert "row 1 feature 4 is infinite" in str(e.value)
    good = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 12], "data": [0.5] * 12}]}
    assert post_infer(ferry, "fraud_xgb", good).status_code == 200


# ------------------------------------------------------------------------------------------------ (d)


def refused(entry: dict) -> bool:
    return entry["state"] == "UNAVAILABLE" and bool(entry.get("reason"))


def add_model(repo: Path, staging_root: Path, name: str, src: Path = EXAMPLES / "fraud_xgb", edit=None) -> Path:
    """Copies an example under a new name, built outside the repository and renamed in (the poller never
    sees half a model)."""
    staging = staging_root / name
    shutil.copytree(src, staging)
    config = (staging / "config.yaml").read_text().replace(f"name: {src.name}", f"name: {name}")
    (staging / "config.yaml").write_text(edit(config) if edit else config)
    os.rename(staging, repo / name)
    return repo / name


def add_version(model_dir: Path, version: int, model_bytes: bytes) -> None:
    staging = model_dir / f"staging-{version}"
    shutil.copytree(model_dir / "1", staging)
    (staging / "model.json").write_bytes(model_bytes)
    os.rename(staging, model_dir / str(version))


def test_bad_model_files_are_refused_with_their_reason_and_version_1_keeps_serving(ferry_admin, tmp_path):
    model = "fraud_reload"
    model_dir = add_model(ferry_admin.repo, tmp_path, model)
    wait_for_entry(ferry_admin, model, "1", lambda e: e["state"] == "READY", "READY")
    x = model_rows("fraud_xgb", 16, seed=9)
    want = python_predict(model_dir, "model.json", x)
    good = (model_dir / "1" / "model.json").read_bytes()
    newer = good.replace(b'"version":[1,7,4]', b'"version":[3,2,0]').replace(b'"base_score":"5E-1"',
                                                                            b'"base_score":"[5E-1]"')
    crashing = good.replace(b'"left_children":[1,', b'"left_children":[70000000,', 1)
    onnx = (EXAMPLES / "identity" / "1" / "model.onnx").read_bytes()
    cases = [(good[:len(good) // 2], "not a JSON document"),
             (onnx, "not a JSON document"),
             (newer, "written by XGBoost 3.2.0, newer than this server's library (1.7.4)"),
             (crashing, "node 0 has children (70000000, 2)")]
    client = httpclient.InferenceServerClient(url=ferry_admin.url, network_timeout=30.0)
    try:
        for version, (model_bytes, reason) in enumerate(cases, start=2):
            add_version(model_dir, version, model_bytes)
            entry = wait_for_entry(ferry_admin, model, str(version), refused, "refused")
            assert reason in entry["reason"], entry
            assert str(ferry_admin.repo) not in entry["reason"], entry
            got, served_version = served(client, model, x, "probability")
            assert served_version == "1"
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
    finally:
        client.close()
    assert ferry_admin.alive()


def test_a_margin_config_is_refused_by_the_probability_references_and_serves_without_them(ferry_admin, tmp_path):
    model = "fraud_margin"
    model_dir = add_model(ferry_admin.repo, tmp_path, model,
                          edit=lambda c: c.replace("parameters: {output: probability}", "parameters: {output: margin}"))
    entry = wait_for_entry(ferry_admin, model, "1", refused, "refused")
    assert "reference check failed" in entry["reason"], entry
    shutil.rmtree(model_dir / "1" / "reference")
    wait_for_entry(ferry_admin, model, "1", lambda e: e["state"] == "READY", "READY without references")
    x = model_rows("fraud_xgb", 32, seed=13)
    client = httpclient.InferenceServerClient(url=ferry_admin.url, network_timeout=30.0)
    try:
        got, _ = served(client, model, x, "probability")
    finally:
        client.close()
    np.testing.assert_allclose(got, python_predict(model_dir, "model.json", x, margin=True), rtol=0, atol=TOLERANCE)
