#!/usr/bin/python3
"""Writes Ferry's example model repository and the PyTorch reference outputs the C++ tests compare to.

Run with Debian's Python (it sees python3-torch 1.13; a pyenv Python on PATH does not):

    /usr/bin/python3 tools/make_example_models.py [--out examples/models] [--ref-out tools/reference]

Deterministic: fixed seeds, single-threaded-equivalent math, no clock. Needs only torch and numpy — not
python OpenCV and not the `onnx` package (torch.onnx.export writes the protobuf itself).

Models (each as <out>/<name>/config.yaml, <out>/<name>/1/model.onnx and <out>/<name>/1/reference/):
  identity  INPUT0 FP32 [16] -> OUTPUT0 = INPUT0 * 2 + 1, max_batch_size 64. The "overhead" model: one
            real op each for Mul and Add so OpenCV keeps a graph (a pure pass-through has no layers).
  cnn       image FP32 [3,224,224] -> probabilities FP32 [10] (softmax), max_batch_size 8. A small
            MobileNet-like classifier with random weights, built only from ops OpenCV 4.6 DNN imports
            correctly: Conv, BatchNorm, ReLU, depthwise Conv, GlobalAveragePool, Flatten, Gemm, Softmax.
            No Clip/ReLU6 (wrong at opset >= 11), no view(N, -1) (wrong shape with batch > 1).
  transformer  tokens FP32 [8,32] -> encoded FP32 [8,32], max_batch_size 8, backend openvino. A pre-norm
            transformer encoder block (nn.LayerNorm, 4-head self-attention with the 1/sqrt(d) scale as a
            constant, residuals, GELU MLP), opset 17. OpenCV 4.6 DNN cannot import it (LayerNorm).
  attention tokens FP32 [8,32] -> attended FP32 [8,32], max_batch_size 8, backend openvino. Single-head
            self-attention with a residual and no LayerNorm, opset 13. OpenCV 4.6 DNN imports it but
            computes wrong numbers (the scalar divide after Q K^T); the reference check catches it.

Reference samples (<out>/<name>/1/reference/reference.yaml + raw little-endian tensor files): inputs and
the PyTorch outputs, in the format Ferry checks every version against when it loads (a version whose
backend disagrees is refused). See `write_reference_samples`.


JSON references for the C++ tests (<ref-out>/<name>.json, identity and cnn only): one input and the PyTorch output. The identity input is stored
literally; the cnn input is described by a formula (see `cnn_input`) so that the file stays small:

    k     = (i * 7919 + 13) % 1000         for flat index i in [0, batch*3*224*224), row-major NCHW
    value = float32((k - 500) / 500.0)     (division in double, then rounded to float32)
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

from reference_samples import write_reference_samples, yaml_dims

OPSET = 11
SEED = 20240611


# ---------------------------------------------------------------------------------------------- models

class Identity(nn.Module):
    def forward(self, x):
        return x * 2.0 + 1.0


def conv_bn_relu(cin, cout, k, stride, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def separable(cin, cout, stride):
    """Depthwise 3x3 + pointwise 1x1, both followed by BN and ReLU (MobileNet v1 block)."""
    return nn.Sequential(conv_bn_relu(cin, cin, 3, stride, groups=cin), conv_bn_relu(cin, cout, 1, 1))


class SmallCnn(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(3, 32, 3, 2),     # 112x112
            separable(32, 64, 1),
            separable(64, 96, 2),          # 56x56
            separable(96, 96, 1),
            separable(96, 160, 2),         # 28x28
            separable(160, 160, 1),
            separable(160, 256, 2),        # 14x14
            separable(256, 256, 1),
            separable(256, 256, 1),
            separable(256, 384, 2),        # 7x7
        )
        self.pool = nn.AdaptiveAvgPool2d(1)   # exports as GlobalAveragePool
        self.flatten = nn.Flatten(1)          # exports as Flatten (not Reshape with -1)
        self.fc = nn.Linear(384, num_classes)  # exports as Gemm
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = self.features(x)
        x = self.flatten(self.pool(x))
        return self.softmax(self.fc(x))


def calibrate_batchnorm(model, gen, steps=4, batch=4):
    """Sets BN running statistics from random images so activations stay well scaled (random weights
    with default BN stats would blow up or vanish through the stack, making the softmax one-hot)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration steps
            m.reset_running_stats()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.rand(batch, 3, 224, 224, generator=gen) * 2.0 - 1.0)
    model.eval()


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block: x + MHA(LN(x)), then + MLP(LN(.)). Sequence length and width
    are fixed ([batch, 8, 32]); head reshapes use -1 for the batch, so no shape arithmetic is traced."""

    def __init__(self, seq=8, width=32, heads=4, hidden=64):
        super().__init__()
        self.seq, self.width, self.heads, self.head_dim = seq, width, heads, width // heads
        self.scale = float(1.0 / (self.head_dim ** 0.5))  # a constant, never computed from x.shape
        self.ln1 = nn.LayerNorm(width)
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def heads_first(self, t):  # [B, T, C] -> [B, H, T, D]
        return t.reshape(-1, self.seq, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        h = self.ln1(x)
        q, k, v = self.heads_first(self.q(h)), self.heads_first(self.k(h)), self.heads_first(self.v(h))
        a = (q @ k.transpose(-2, -1)) * self.scale
        o = (a.softmax(-1) @ v).transpose(1, 2).reshape(-1, self.seq, self.width)
        x = x + self.proj(o)
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class Attention(nn.Module):
    """Single-head self-attention with a residual, no LayerNorm: the block OpenCV 4.6 DNN loads but gets
    wrong. Separate q/k/v projections (a fused qkv split would export Identity nodes OpenCV rejects)."""

    def __init__(self, width=32):
        super().__init__()
        self.scale = float(width ** 0.5)  # a Python float: a traced x.shape would export a Pow node
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        a = (self.q(x) @ self.k(x).transpose(-2, -1)) / self.scale
        return x + self.proj(a.softmax(-1) @ self.v(x))


def randomize_layernorms(model, gen):
    """Non-trivial LayerNorm affine parameters: a reference check with weight 1 / bias 0 would not see
    them, and identical initializers would be exported as Identity nodes."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))


def cnn_input(batch):
    n = batch * 3 * 224 * 224
    i = np.arange(n, dtype=np.int64)
    k = (i * 7919 + 13) % 1000
    return ((k - 500) / 500.0).astype(np.float32).reshape(batch, 3, 224, 224)


# ------------------------------------------------------------------------------------------- writing

def write_config(model_dir, name, max_batch_size, inputs, outputs, preferred, delay_us, threads,
                 backend="opencv_dnn", parameters=None, model_filename=None, platform="onnx",
                 written_by="tools/make_example_models.py"):
    # `threads` ends up in cv::setNumThreads, which is process-wide (the last model loaded wins), so
    # every example model asks for the same count.
    lines = [
        f"# Written by {written_by}; edit the script, not this file.",
        f"name: {name}",
        f"backend: {backend}",
        f"platform: {platform}",
    ]
    if model_filename:
        lines.append(f"model_filename: {model_filename}")
    lines += [
        f"max_batch_size: {max_batch_size}",
        "inputs:",
    ]
    lines += [f"  - {{name: {n}, datatype: FP32, dims: {yaml_dims(d)}}}" for n, d in inputs]
    lines.append("outputs:")
    lines += [f"  - {{name: {n}, datatype: FP32, dims: {yaml_dims(d)}}}" for n, d in outputs]
    lines.append(f"dynamic_batching: {{max_queue_delay_us: {delay_us}, "
                 f"preferred_batch_sizes: {yaml_dims(preferred)}}}")
    lines.append(f"instance_group: {{count: 1, threads: {threads}}}")
    lines.append("max_queue_size: 64")
    if parameters:
        lines.append("parameters: {" + ", ".join(f"{k}: {v}" for k, v in parameters.items()) + "}")
    with open(os.path.join(model_dir, "config.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def export(model, example, path, input_name, output_name, opset=OPSET):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(
        model, example, path,
        input_names=[input_name], output_names=[output_name],
        dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
        opset_version=opset, do_constant_folding=True, export_params=True,
    )
    size = os.path.getsize(path)
    if size >= 2 * 1024 * 1024:
        sys.exit(f"{path} is {size} bytes; example models must stay under 2 MB")
    return size


def floats(a):
    # repr of a float32 widened to double round-trips exactly through JSON and back to float32.
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def write_reference(path, ref):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(ref, f)
        f.write("\n")


def torch_outputs(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def make_identity(out, ref_out):
    name = "identity"
    model_dir = os.path.join(out, name)
    model = Identity().eval()
    size = export(model, torch.zeros(1, 16), os.path.join(model_dir, "1", "model.onnx"), "INPUT0", "OUTPUT0")
    write_config(model_dir, name, 64, [("INPUT0", [16])], [("OUTPUT0", [16])],
                 preferred=[16, 64], delay_us=100, threads=2)
    x = (np.arange(2 * 16, dtype=np.float32).reshape(2, 16) - 8.0) * 0.25
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    write_reference(os.path.join(ref_out, f"{name}.json"), {
        "model": name,
        "input": {"name": "INPUT0", "shape": list(x.shape), "data": floats(x)},
        "output": {"name": "OUTPUT0", "shape": list(y.shape), "data": floats(y)},
        "tolerance": 1e-6,
    })
    write_reference_samples(os.path.join(model_dir, "1"),
                            [{"name": "s0", "inputs": [("INPUT0", x)], "outputs": [("OUTPUT0", y)]}],
                            tolerance=(1.0e-6, 0.0))
    return size


def make_cnn(out, ref_out):
    name = "cnn"
    model_dir = os.path.join(out, name)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED + 1)
    model = SmallCnn()
    calibrate_batchnorm(model, gen)
    # Spread the logits so the probabilities are not all ~0.1 (a flat softmax would hide errors).
    with torch.no_grad():
        model.fc.weight.mul_(8.0)
    size = export(model, torch.zeros(1, 3, 224, 224), os.path.join(model_dir, "1", "model.onnx"),
                  "image", "probabilities")
    write_config(model_dir, name, 8, [("image", [3, 224, 224])], [("probabilities", [10])],
                 preferred=[4, 8], delay_us=500, threads=2)
    x = cnn_input(2)  # two rows, so the reference also checks that batching keeps rows apart
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    write_reference(os.path.join(ref_out, f"{name}.json"), {
        "model": name,
        "input": {
            "name": "image", "shape": list(x.shape),
            "formula": "k = (i * 7919 + 13) % 1000; value = float32((k - 500) / 500.0); "
                       "i = flat row-major index",
            # A few literal values to check an implementation of the formula against.
            "first": floats(x.ravel()[:8]),
        },
        "output": {"name": "probabilities", "shape": list(y.shape), "data": floats(y)},
        "tolerance": 1e-4,
    })
    # One image (600 KB) keeps the repository small; the JSON reference above checks batching.
    write_reference_samples(os.path.join(model_dir, "1"),
                            [{"name": "s0", "inputs": [("image", x[:1])], "outputs": [("probabilities", y[:1])]}],
                            tolerance=(1.0e-4, 0.0))
    return size


def token_samples(model, seed, batch=2, seq=8, width=32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, seq, width, generator=gen).numpy()
    return x, torch_outputs(model, x)


def write_token_model(model_dir, name, model, output, opset, sample_seed):
    """A tokens FP32 [8, 32] -> output [8, 32] model on openvino: ONNX, config and reference samples."""
    size = export(model, torch.zeros(1, 8, 32), os.path.join(model_dir, "1", "model.onnx"),
                  "tokens", output, opset=opset)
    write_config(model_dir, name, 8, [("tokens", [8, 32])], [(output, [8, 32])],
                 preferred=[4, 8], delay_us=200, threads=2, backend="openvino",
                 parameters={"inference_precision": "f32"})
    x, y = token_samples(model, sample_seed)
    write_reference_samples(os.path.join(model_dir, "1"),
                            [{"name": "s0", "inputs": [("tokens", x)], "outputs": [(output, y)]}])
    return size


def make_transformer(out, ref_out):
    name = "transformer"
    model_dir = os.path.join(out, name)
    torch.manual_seed(SEED + 10)
    model = EncoderBlock()
    randomize_layernorms(model, torch.Generator().manual_seed(SEED + 11))
    model.eval()
    return write_token_model(model_dir, name, model, "encoded", opset=17, sample_seed=SEED + 12)


def make_attention(out, ref_out):
    name = "attention"
    model_dir = os.path.join(out, name)
    torch.manual_seed(SEED + 20)
    model = Attention().eval()
    return write_token_model(model_dir, name, model, "attended", opset=13, sample_seed=SEED + 21)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(root, "examples", "models"))
    p.add_argument("--ref-out", default=os.path.join(root, "tools", "reference"))
    args = p.parse_args()

    torch.set_num_threads(2)
    # Deterministic kernels where it matters (CPU convolutions are already deterministic).
    torch.use_deterministic_algorithms(True)
    for name, fn in (("identity", make_identity), ("cnn", make_cnn), ("transformer", make_transformer),
                     ("attention", make_attention)):
        size = fn(args.out, args.ref_out)
        print(f"{name}: {os.path.join(args.out, name)} ({size} bytes)")


if __name__ == "__main__":
    main()
