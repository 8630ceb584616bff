#!/usr/bin/env python3
"""The Python peer of B19: what a team writes instead of a batch server. Reads the same JSONL of OIP
requests, decodes each line with json and numpy, runs the same ONNX file through the same runtime
(OpenCV 4.6's DNN, Debian's python3-opencv, 2 threads) `--batch` rows at a time, and writes one JSON
line per record. Prints {"records", "seconds", "records_per_s"} (the model load is not timed).

    /usr/bin/python3 bench/peers/batch_cv2.py --model examples/models/shapes/1/model.onnx \
        --input in.jsonl --output out.jsonl --batch 8
"""
import argparse
import json
import time

import cv2
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    net = cv2.dnn.readNetFromONNX(args.model)
    out_names = net.getUnconnectedOutLayersNames()

    def flush(ids, rows, out):
        net.setInput(np.concatenate(rows, axis=0))
        result = net.forward(out_names)[0]
        for i, key in enumerate(ids):
            out.write(json.dumps({"id": key, "outputs": [{"name": "probabilities", "datatype": "FP32",
                                                          "shape": [1, result.shape[1]],
                                                          "data": result[i].tolist()}]}) + "\n")

    start = time.perf_counter()
    n = 0
    with open(args.input) as f, open(args.output, "w") as out:
        ids, rows = [], []
        for line in f:
            request = json.loads(line)
            tensor = request["inputs"][0]
            rows.append(np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"]))
            ids.append(request.get("id", str(n)))
            n += 1
            if len(rows) == args.batch:
                flush(ids, rows, out)
                ids, rows = [], []
        if rows:
            flush(ids, rows, out)
    seconds = time.perf_counter() - start
    print(json.dumps({"records": n, "seconds": seconds, "records_per_s": n / seconds}))


if __name__ == "__main__":
    main()
