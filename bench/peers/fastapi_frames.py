"""B11 peer (bench/run_frame_benchmark.py --peer fastapi): FastAPI serving Ferry's camera-frame WebSocket.

    GET /v2/health/ready                -> {"ready": true}
    WS  /v1/ws/frames/{model}           -> Ferry's frame protocol (src/api/frame_stream.h):
        binary message = one frame: raw BGR pixels of the config's raw size, or an encoded image
        (cv2.imdecode); each processed frame gets
          {"type":"result","frame":N,"model":"m","outputs":{"name":[values]},"server_ms":1.2,"dropped":D}
        and a failed one {"type":"error","frame":N,"error":"..."}. Text {"type":"config","model":"m"}
        switches the model for later frames.

Pre-processing follows the `preprocess` block of <models>/<model>/config.yaml (raw size, grey/rgb,
resize + interpolation, scale, mean/std, NCHW float32), and the model is <models>/<model>/1/model.onnx
run with cv2.dnn on one thread (cv2.setNumThreads(1); Ferry's instance_group threads: 1). Latest frame
wins, as in Ferry: one frame in inference, one waiting; a newer frame replaces the waiting one and
counts as dropped. Decoding, pre-processing and inference run in a single-thread executor (the one
model instance, shared by all connections), so the event loop keeps receiving meanwhile.

    FERRY_MODELS=examples/rug-cutting/models .venv-bench/bin/uvicorn --app-dir bench/peers \
        fastapi_frames:app --port 18091 --workers 1 --log-level warning --no-access-log
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import cv2
import numpy as np
import yaml
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

cv2.setNumThreads(1)
MODELS = Path(os.environ.get("FERRY_MODELS", Path(__file__).resolve().parents[2] / "examples" / "rug-cutting" / "models"))
INTERPOLATION = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "bilinear": cv2.INTER_LINEAR,
                 "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}


class Model:
    """One model instance: its pre-processing and its cv2.dnn net. Used only from the executor thread."""

    def __init__(self, name: str):
        config = yaml.safe_load((MODELS / name / "config.yaml").read_text())
        p = config["preprocess"]
        raw = p.get("raw") or {}
        self.raw_shape = (raw["height"], raw["width"], raw["channels"]) if raw else None
        self.raw_size = int(np.prod(self.raw_shape)) if raw else 0
        self.color = p.get("color", "bgr")
        self.resize = tuple(p["resize"]) if p.get("resize") else None
        self.interpolation = INTERPOLATION[p.get("interpolation", "linear")]
        self.crop = p.get("crop")
        # x * scale, then (x - mean) / std, folded into one multiply-add per channel.
        scale = float(p.get("scale", 1.0))
        channels = 1 if self.color == "grey" else 3
        mean = np.asarray(p.get("mean", [0.0] * channels), np.float32)
        std = np.asarray(p.get("std", [1.0] * channels), np.float32)
        self.a = (scale / std).reshape(-1, 1, 1).astype(np.float32)
        self.b = (-mean / std).reshape(-1, 1, 1).astype(np.float32)
        self.tensor_name = p["tensor"]["name"]
        self.tensor_dims = tuple(p["tensor"]["dims"])
        self.net = cv2.dnn.readNetFromONNX(str(MODELS / name / "1" / "model.onnx"))
        self.outputs = [o["name"] for o in config["outputs"]]

    def image(self, data: bytes) -> np.ndarray:
        if self.raw_size and len(data) == self.raw_size:
            return np.frombuffer(data, np.uint8).reshape(self.raw_shape)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{len(data)} bytes are neither a raw frame ({self.raw_size} bytes) nor an image "
                             "OpenCV can decode")
        return image

    def infer(self, data: bytes) -> dict[str, list[float]]:
        image = self.image(data)
        if self.crop:
            x, y, w, h = self.crop
            image = image[y:y + h, x:x + w]
        if self.color == "grey":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif self.color == "rgb":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.resize:
            image = cv2.resize(image, self.resize, interpolation=self.interpolation)
        chw = image[np.newaxis] if image.ndim == 2 else image.transpose(2, 0, 1)
        tensor = (chw.astype(np.float32) * self.a + self.b).reshape(self.tensor_dims)
        self.net.setInput(tensor, self.tensor_name)
        values = self.net.forward(self.outputs)
        return {name: v.ravel().tolist() for name, v in zip(self.outputs, values)}


executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")  # instance_group count 1
models: dict[str, Model] = {}


def load(name: str) -> Model:
    if name not in models:
        if not (MODELS / name / "config.yaml").is_file():
            raise KeyError(f"unknown model '{name}'")
        models[name] = Model(name)
    return models[name]


@asynccontextmanager
async def lifespan(_: FastAPI):
    for d in sorted(MODELS.iterdir()):  # load every model before serving, as Ferry does
        if (d / "config.yaml").is_file():
            await asyncio.get_running_loop().run_in_executor(executor, load, d.name)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/v2/health/ready")
async def ready():
    return JSONResponse({"ready": True})


@app.websocket("/v1/ws/frames/{model}")
async def frames(websocket: WebSocket, model: str):
    if model not in models:
        await websocket.close(code=1008, reason=f"unknown model '{model}'")
        return
    await websocket.accept()
    loop = asyncio.get_running_loop()
    state = {"model": model, "next": 0, "dropped": 0, "waiting": None, "busy": False}

    async def run(frame: tuple[int, bytes, str, float]) -> None:
        while frame is not None:
            index, data, name, received = frame
            try:
                outputs = await loop.run_in_executor(executor, models[name].infer, data)
                message = {"type": "result", "frame": index, "model": name, "outputs": outputs,
                           "server_ms": (time.perf_counter() - received) * 1000, "dropped": state["dropped"]}
            except Exception as e:  # noqa: BLE001 - every failure goes back to the client
                message = {"type": "error", "frame": index, "error": str(e)}
            try:
                await websocket.send_text(json.dumps(message))
            except Exception:  # noqa: BLE001 - the client is gone
                return
            frame, state["waiting"] = state["waiting"], None
        state["busy"] = False

    task = None
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes") is not None:
                frame = (state["next"], message["bytes"], state["model"], time.perf_counter())
                state["next"] += 1
                if state["busy"]:
                    if state["waiting"] is not None:
                        state["dropped"] += 1  # the newer frame wins
                    state["waiting"] = frame
                else:
                    state["busy"] = True
                    task = asyncio.create_task(run(frame))
                continue
            try:
                config = json.loads(message.get("text") or "")
                assert config["type"] == "config" and config["model"] in models
                state["model"] = config["model"]
            except Exception:  # noqa: BLE001
                await websocket.send_text(json.dumps({"type": "error", "frame": -1, "error":
                                                      'text messages must be {"type": "config", "model": "..."} '
                                                      "naming a loaded model; send frames as binary messages"}))
    except WebSocketDisconnect:
        pass
    finally:
        state["waiting"] = None
        if task is not None:
            task.cancel()
