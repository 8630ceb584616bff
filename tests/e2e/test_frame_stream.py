"""Image pre-processing declared in a model's config, and the camera frame channel
(WebSocket /v1/ws/frames/{model}).

The model is an identity-backend model behind a `preprocess` block, so its output IS the tensor the
server made: the tests compare it with the same pre-processing done in numpy. Frames arrive as raw BGR
bytes or encoded images (PNG, JPEG), over OIP (tritonclient, BYTES) and over the WebSocket, where each
frame gets one message back, a bad frame gets an error naming it and the stream goes on, and the newest
frame always wins: whatever is dropped, the last frame sent is answered and nothing queues up.
"""
from __future__ import annotations

import json
import struct
import zlib

import cv2
import numpy as np
import pytest
import websocket
import tritonclient.http as triton

from conftest import FerryServer, _SERVERS, _stop_server, make_repository

W, H = 32, 24          # the camera's frame
OUT_W, OUT_H = 16, 12  # what the model takes

CONFIG = f"""name: frame_grey
backend: identity
max_batch_size: 0
inputs:
  - {{name: frame, datatype: BYTES, dims: [1]}}
outputs:
  - {{name: pixels, datatype: FP32, dims: [1, 1, {OUT_H}, {OUT_W}]}}
preprocess:
  input: frame
  raw: {{width: {W}, height: {H}, channels: 3}}
  color: grey
  resize: [{OUT_W}, {OUT_H}]
  interpolation: area
  scale: 0.00392156862745098
  mean: [0.5]
  std: [0.5]
  tensor: {{name: input, dims: [1, 1, {OUT_H}, {OUT_W}]}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("frames")
    repo = make_repository(base / "models")
    (repo / "frame_grey" / "1").mkdir(parents=True)
    (repo / "frame_grey" / "config.yaml").write_text(CONFIG)
    srv = FerryServer(repo=repo, log_path=base / "ferry.log", extra_args=["--data-dir", str(base / "data")])
    srv.start()
    _SERVERS.append(srv)
    yield srv
    _stop_server(srv)


def frame(seed: int) -> np.ndarray:
    """A BGR frame whose 2x2 blocks are one colour each, so an area resize to half size is exact."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(H // 2, W // 2, 3), dtype=np.uint8)
    return blocks.repeat(2, axis=0).repeat(2, axis=1)


# OpenCV converts to grey in fixed point, which rounds a few pixels one level away from float math.
ONE_GREY_LEVEL = 2 / 255 + 1e-6


def expected(bgr: np.ndarray) -> np.ndarray:
    # OpenCV's BGR -> grey: 0.299 R + 0.587 G + 0.114 B, rounded to an integer.
    grey = np.rint(bgr[..., 2] * 0.299 + bgr[..., 1] * 0.587 + bgr[..., 0] * 0.114)
    small = grey[::2, ::2]
    return ((small / 255.0) - 0.5) / 0.5


def png(bgr: np.ndarray) -> bytes:
    """A PNG written here (RGB, no filter), so the test does not depend on an encoder library."""
    rgb = bgr[..., ::-1]
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(rgb.shape[0]))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", rgb.shape[1], rgb.shape[0], 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def infer_http(server: FerryServer, payload: bytes) -> np.ndarray:
    client = triton.InferenceServerClient(f"{server.host}:{server.port}")
    inp = triton.InferInput("frame", [1], "BYTES")
    inp.set_data_from_numpy(np.array([payload], dtype=np.object_), binary_data=True)
    return client.infer("frame_grey", [inp]).as_numpy("pixels")


def connect(server: FerryServer, model: str = "frame_grey") -> websocket.WebSocket:
    return websocket.create_connection(f"ws://{server.host}:{server.port}/v1/ws/frames/{model}", timeout=30)


def test_raw_and_png_frames_over_oip_become_the_configured_tensor(server):
    bgr = frame(1)
    got = infer_http(server, bgr.tobytes())
    assert got.shape == (1, 1, OUT_H, OUT_W)
    np.testing.assert_allclose(got[0, 0], expected(bgr), atol=ONE_GREY_LEVEL)
    np.testing.assert_allclose(infer_http(server, png(bgr))[0, 0], expected(bgr), atol=ONE_GREY_LEVEL)


def test_the_frame_socket_answers_each_frame_and_survives_bad_ones(server):
    ws = connect(server)
    try:
        good = frame(2)
        ok, jpeg = cv2.imencode(".jpg", good)
        assert ok
        cases = [good.tobytes(), b"not an image", png(good)[:-20], good.tobytes()[:-1], jpeg.tobytes()[:-200],
                 png(good)]
        replies = []
        for i, payload in enumerate(cases):
            ws.send_binary(payload)
            replies.append(json.loads(ws.recv()))  # one at a time: nothing is dropped
        assert [r["frame"] for r in replies] == list(range(len(cases)))
        assert [r["type"] for r in replies] == ["result", "error", "error", "error", "error", "result"]
        for r in (replies[0], replies[5]):
            got = np.array(r["outputs"]["pixels"], dtype=np.float32).reshape(OUT_H, OUT_W)
            np.testing.assert_allclose(got, expected(good), atol=ONE_GREY_LEVEL)
            assert r["model"] == "frame_grey" and r["dropped"] == 0 and r["server_ms"] >= 0
        assert "neither a raw 32x24x3 frame" in replies[1]["error"]
        assert "truncated PNG" in replies[2]["error"]
        assert "neither a raw" in replies[3]["error"]
        assert "truncated JPEG" in replies[4]["error"]
    finally:
        ws.close()
    assert server.get("/v2/health/live")[0] == 200


def test_the_newest_frame_wins_and_every_frame_is_accounted_for(server):
    ws = connect(server)
    try:
        sent = 300
        for i in range(sent):
            ws.send_binary(frame(i % 7).tobytes())
        results = []
        while not results or results[-1]["frame"] != sent - 1:
            msg = json.loads(ws.recv())
            assert msg["type"] == "result", msg
            results.append(msg)
        frames = [r["frame"] for r in results]
        assert frames == sorted(frames) and len(set(frames)) == len(frames), "answers out of order or twice"
        # Every frame was either answered or dropped, and the drop count says how many were dropped.
        assert len(results) + results[-1]["dropped"] == sent, (len(results), results[-1]["dropped"])
    finally:
        ws.close()


def test_text_messages_switch_models_or_are_refused(server):
    ws = connect(server)
    try:
        for message, says in [("hello", "config"), (json.dumps({"type": "config", "model": "nope"}), "nope")]:
            ws.send(message)
            reply = json.loads(ws.recv())
            assert reply["type"] == "error" and reply["frame"] == -1 and says in reply["error"], reply
        ws.send(json.dumps({"type": "config", "model": "identity"}))  # exists, but takes no frames
        ws.send_binary(frame(3).tobytes())
        reply = json.loads(ws.recv())
        assert reply == {"type": "error", "frame": 0, "error": reply["error"]} and "no preprocess" in reply["error"]
        ws.send(json.dumps({"type": "config", "model": "frame_grey"}))
        ws.send_binary(frame(3).tobytes())
        assert json.loads(ws.recv())["type"] == "result"
    finally:
        ws.close()


def test_the_frame_endpoint_refuses_models_without_frames_and_plain_http(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(server, "identity")
    assert refused.value.status_code == 404
    status, _, body = server.request("GET", "/v1/ws/frames/frame_grey")
    assert status == 426 and "error" in json.loads(body)
    status, _, body = server.request("GET", "/v1/ws/frames/identity")
    assert status == 400 and "no preprocess" in json.loads(body)["error"]
