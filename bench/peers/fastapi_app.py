"""B1 peer (docs/benchmarks.md): FastAPI serving the same two endpoints as Ferry.

    GET  /v2/health/ready               -> {"ready": true}
    POST /v2/models/identity/infer      -> parses the OIP JSON request and echoes each input as an output
                                           (OUTPUT<i>), as Ferry's identity backend does

Run with one worker, e.g.
    .venv-bench/bin/uvicorn --app-dir bench/peers fastapi_app:app --port 18090 --workers 1 \
        --http httptools --loop uvloop --log-level warning --no-access-log          # uvicorn[standard]
    ... --http h11 --loop asyncio                                                    # default uvicorn

The handler reads the body with request.json() and returns a JSONResponse: the cheapest idiomatic
FastAPI path (no pydantic request model), so the peer is not handicapped.
"""
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.get("/v2/health/ready")
async def ready():
    return JSONResponse({"ready": True})


@app.post("/v2/models/{model}/infer")
async def infer(model: str, request: Request):
    if model != "identity":
        return JSONResponse({"error": f"unknown model '{model}'"}, status_code=404)
    body = await request.json()
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return JSONResponse({"error": "'inputs' must be a non-empty list"}, status_code=400)
    outputs = []
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or "data" not in tensor:
            return JSONResponse({"error": "each input needs name, datatype, shape and data"}, status_code=400)
        outputs.append({"name": f"OUTPUT{i}", "datatype": tensor.get("datatype"),
                        "shape": tensor.get("shape"), "data": tensor["data"]})
    response = {"model_name": model, "model_version": "1", "outputs": outputs}
    if "id" in body:
        response["id"] = body["id"]
    return JSONResponse(response)
