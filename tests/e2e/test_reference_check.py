"""Reference samples checked at load (examples/models/<m>/1/reference/, from tools/make_example_models.py).

(a) the `transformer` and `attention` examples, served by the openvino backend, answer equal to PyTorch;
(b) the same models under `backend: opencv_dnn` are not served: `attention` loads in OpenCV but its
    numbers are wrong, so the reference check refuses it; `transformer` (LayerNorm) does not load at all;
(c) hot reload: a good version 1 serves, a version 2 whose reference outputs are wrong is refused, and
    version 1 keeps answering throughout while the index shows version 2 UNAVAILABLE with the reason;
(d) the `shapes` / `shapes_openvino` / `shapes_int8` examples (tools/make_int8_example.py) keep the
    held-out accuracy that script measured.

(b) and (c) drop models into the repository of this module's own server (`ferry_admin`, poll mode).
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from conftest import ADMIN_KEY, EXAMPLES, ROOT, repository_index, wait_for_entry

TOKENS_SHAPE = [2, 8, 32]
OUTPUT = {"transformer": "encoded", "attention": "attended"}
ATOL = 1e-4
SETTLE_TIMEOUT_S = 30.0


def reference(model_dir: Path, tensor: str) -> np.ndarray:
    return np.fromfile(model_dir / "1" / "reference" / f"s0.{tensor}.bin", dtype="<f4").reshape(TOKENS_SHAPE)


def infer_tokens(url: str, model: str, x: np.ndarray, output: str, version: str = "") -> tuple[np.ndarray, str]:
    client = httpclient.InferenceServerClient(url)
    try:
        inp = httpclient.InferInput("tokens", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        result = client.infer(model, [inp], model_version=version,
                              outputs=[httpclient.InferRequestedOutput(output, binary_data=True)])
        return result.as_numpy(output), result.get_response()["model_version"]
    finally:
        client.close()



def settled_unavailable(entry: dict) -> bool:
    return entry["state"] == "UNAVAILABLE" and bool(entry.get("reason"))


def copy_model(src: Path, repo: Path, name: str, staging_root: Path, backend: str | None = None) -> Path:
    """Copies an example model under a new name (and backend), built outside the repository and renamed
    in, so the poller never sees half a model."""
    staging = staging_root / name
    shutil.copytree(src, staging)
    lines = []
    for line in (staging / "config.yaml").read_text().splitlines():
        if line.startswith("name:"):
            line = f"name: {name}"
        elif backend is not None and line.startswith("backend:"):
            line = f"backend: {backend}"
        elif backend is not None and backend != "openvino" and line.startswith("parameters:"):
            continue  # openvino's options mean nothing to another backend
        lines.append(line)
    (staging / "config.yaml").write_text("\n".join(lines) + "\n")
    os.rename(staging, repo / name)
    return repo / name


# ------------------------------------------------------------------------------------------------ (a)

@pytest.mark.parametrize("model", ["transformer", "attention"])
def test_openvino_examples_answer_like_pytorch(ferry, model):
    x = reference(EXAMPLES / model, "tokens")
    want = reference(EXAMPLES / model, OUTPUT[model])
    got, _ = infer_tokens(ferry.url, model, x, OUTPUT[model])
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= ATOL, np.abs(got - want).max()
    # One row at a time too: the batch must not leak between rows.
    for row in range(x.shape[0]):
        got_row, _ = infer_tokens(ferry.url, model, x[row:row + 1], OUTPUT[model])
        assert np.abs(got_row[0] - want[row]).max() <= ATOL


def test_the_examples_declare_openvino_and_carry_reference_samples():
    for model in ("identity", "cnn", "transformer", "attention"):
        assert (EXAMPLES / model / "1" / "reference" / "reference.yaml").is_file(), model
    for model in ("transformer", "attention"):
        assert "backend: openvino" in (EXAMPLES / model / "config.yaml").read_text().splitlines(), model


# ------------------------------------------------------------------------------------------------ (b)

def test_opencv_refuses_attention_by_the_reference_check_and_cannot_load_the_transformer(ferry_admin, tmp_path):
    repo = ferry_admin.repo
    copy_model(EXAMPLES / "attention", repo, "attention_cv", tmp_path, backend="opencv_dnn")
    copy_model(EXAMPLES / "transformer", repo, "transformer_cv", tmp_path, backend="opencv_dnn")

    attention = wait_for_entry(ferry_admin, "attention_cv", "1", settled_unavailable, "refused")
    assert "reference check failed" in attention["reason"], attention
    assert str(repo) not in attention["reason"], attention

    transformer = wait_for_entry(ferry_admin, "transformer_cv", "1", settled_unavailable, "refused")
    assert "reference" not in transformer["reason"].lower(), transformer  # it never got that far
    assert "LayerNormalization" in transformer["reason"] or "opencv" in transformer["reason"].lower(), transformer

    for model in ("attention_cv", "transformer_cv"):
        r = requests.get(f"{ferry_admin.base_url}/v2/models/{model}/ready", timeout=5)
        assert r.status_code != 200, (model, r.status_code)
        x = reference(EXAMPLES / "attention", "tokens")
        body = {"inputs": [{"name": "tokens", "shape": TOKENS_SHAPE, "datatype": "FP32",
                            "data": x.ravel().tolist()}]}
        r = requests.post(f"{ferry_admin.base_url}/v2/models/{model}/infer", json=body, timeout=5)
        assert 400 <= r.status_code < 600, (model, r.status_code, r.text[:200])


# ------------------------------------------------------------------------------------------------ (c)

class Traffic:
    """One client thread sending the attention sample to version-unpinned requests; checks every answer."""

    def __init__(self, url: str, model: str, x: np.ndarray, want: np.ndarray):
        self.url, self.model, self.x, self.want = url, model, x, want
        self.stop_event = threading.Event()
        self.versions: list[str] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the client thread hung"

    def _run(self):
        while not self.stop_event.is_set():
            try:
                got, version = infer_tokens(self.url, self.model, self.x, "attended")
                if np.abs(got - self.want).max() > ATOL:
                    raise RuntimeError(f"version {version} answered wrong: {np.abs(got - self.want).max()}")
                self.versions.append(version)
            except Exception as e:  # noqa: BLE001 - every failure is asserted on
                self.failures.append(repr(e)[:300])


def test_a_version_with_wrong_reference_outputs_is_refused_and_the_old_one_keeps_serving(ferry_admin, tmp_path):
    repo = ferry_admin.repo
    model = "attention_reload"
    model_dir = copy_model(EXAMPLES / "attention", repo, model, tmp_path)
    wait_for_entry(ferry_admin, model, "1", lambda e: e["state"] == "READY", "READY")
    x = reference(model_dir, "tokens")
    want = reference(model_dir, "attended")

    with Traffic(ferry_admin.url, model, x, want) as traffic:
        deadline = time.monotonic() + 10
        while len(traffic.versions) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(traffic.versions) >= 20, traffic.failures[:5]

        # Version 2: the same model, but its reference outputs are off by 0.5 everywhere.
        staging = model_dir / "staging-2"
        shutil.copytree(model_dir / "1", staging)
        (want + 0.5).astype("<f4").tofile(staging / "reference" / "s0.attended.bin")
        os.rename(staging, model_dir / "2")

        entry = wait_for_entry(ferry_admin, model, "2", settled_unavailable, "refused")
        assert "reference check failed" in entry["reason"], entry
        assert str(repo) not in entry["reason"] and "/tmp" not in entry["reason"], entry

        seen = len(traffic.versions)
        deadline = time.monotonic() + 10
        while len(traffic.versions) < seen + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        traffic.stop()
        assert traffic.failures == [], traffic.failures[:10]
        assert set(traffic.versions) == {"1"}, set(traffic.versions)
        assert len(traffic.versions) >= seen + 20, "traffic stalled after version 2 was dropped in"

    v1 = next(e for e in repository_index(ferry_admin) if e.get("name") == model and e.get("version") == "1")
    assert v1["state"] == "READY", repository_index(ferry_admin)
    r = requests.get(f"{ferry_admin.base_url}/v2/models/{model}/versions/2/ready", timeout=5)
    assert r.status_code != 200
    got, version = infer_tokens(ferry_admin.url, model, x, "attended")
    assert version == "1" and np.abs(got - want).max() <= ATOL
    meta = requests.get(f"{ferry_admin.base_url}/v2/models/{model}", timeout=5).json()
    assert meta["versions"] == ["1"], meta


# ------------------------------------------------------------------------- (d) the int8 example

def test_the_shapes_examples_keep_their_measured_accuracy(ferry):
    """tools/make_int8_example.py's three models, served, on its held-out set: fp32 on either backend
    as accurate as PyTorch was, int8 close to what NNCF's run measured (other CPUs may round int8
    differently, so within 2 points)."""
    data = np.load(ROOT / "tools" / "data" / "shapes_heldout.npz")
    images, labels = data["images"].astype(np.float32) / np.float32(255.0), data["labels"]
    report = json.loads((ROOT / "tools" / "data" / "shapes_report.json").read_text())
    client = httpclient.InferenceServerClient(ferry.url)
    try:
        accuracy = {}
        for model in ("shapes", "shapes_openvino", "shapes_int8"):
            predicted = []
            for i in range(0, len(images), 8):
                inp = httpclient.InferInput("image", list(images[i:i + 8].shape), "FP32")
                inp.set_data_from_numpy(images[i:i + 8], binary_data=True)
                probs = client.infer(model, [inp]).as_numpy("probabilities")
                predicted.append(probs.argmax(1))
            accuracy[model] = float((np.concatenate(predicted) == labels).mean())
    finally:
        client.close()
    want = report["accuracy"]
    assert abs(accuracy["shapes"] - want["pytorch_fp32"]) <= 0.004, (accuracy, want)
    assert abs(accuracy["shapes_openvino"] - want["pytorch_fp32"]) <= 0.004, (accuracy, want)
    assert abs(accuracy["shapes_int8"] - want["openvino_int8"]) <= 0.02, (accuracy, want)
