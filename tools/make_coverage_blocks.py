#!/usr/bin/python3
"""Writes a model repository with one tiny model per operator pattern per backend, each with PyTorch
reference samples, to measure which backend serves which pattern correctly.

Run with Debian's Python (python3-torch 1.13):

    /usr/bin/python3 tools/make_coverage_blocks.py --out /tmp/coverage-models [--pattern conv ...]

For every pattern P and backend B (opencv_dnn, openvino) it writes
    <out>/P__B/config.yaml             backend B (openvino: inference_precision f32), max_batch_size 8
    <out>/P__B/1/model.onnx            the same bytes for both backends
    <out>/P__B/1/reference/            one sample, batch 2, with the PyTorch output (see
                                       tools/make_example_models.py, write_reference_samples)
and prints a JSON list of {"pattern", "description", "opset", "input_shape", "output_shape"} on stdout.
Every model has one input `x` and one output `y`; samples use batch 2 (several patterns only go wrong
with batch > 1). Deterministic: each pattern seeds its own weights and input from its name.

tests/e2e/test_backend_coverage.py serves the result and renders docs/backend-coverage.md's table.
"""
import argparse
import json
import os
import shutil
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_example_models import Attention, export, write_config  # noqa: E402
from reference_samples import write_reference_samples  # noqa: E402

BACKENDS = ("opencv_dnn", "openvino")
BATCH = 2
SEED = 20240917


# ------------------------------------------------------------------------------------------- modules

class Lambda(nn.Module):
    """A module around a function, holding the parameters it uses."""

    def __init__(self, fn, **modules):
        super().__init__()
        self.fn = fn
        for k, v in modules.items():
            setattr(self, k, v)

    def forward(self, x):
        return self.fn(self, x)


def randomized(module, gen):
    """Random affine/statistics parameters for norm layers (defaults 1/0 would hide errors and be
    deduplicated into Identity nodes by the exporter)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(1.0 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                    m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.5 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    return module


def conv(cin, cout, k=3, **kw):
    return nn.Conv2d(cin, cout, k, padding=kw.pop("padding", k // 2), **kw)


def make_attention(width=16):
    return Attention(width)


# (name, description, factory, input shape without batch, opset). Factories run after seeding.
PATTERNS = [
    ("conv", "Conv2d 3->8, 3x3, padding 1", lambda: conv(3, 8), [3, 8, 8], 13),
    ("batchnorm", "BatchNorm2d alone (eval, random statistics)", lambda: nn.BatchNorm2d(8), [8, 6, 6], 13),
    ("depthwise_conv", "depthwise Conv2d (groups = channels)", lambda: conv(8, 8, groups=8), [8, 6, 6], 13),
    ("maxpool", "MaxPool2d 2x2", lambda: nn.MaxPool2d(2), [4, 8, 8], 13),
    ("avgpool", "AvgPool2d 2x2", lambda: nn.AvgPool2d(2), [4, 8, 8], 13),
    ("global_avgpool", "AdaptiveAvgPool2d(1) (GlobalAveragePool)", lambda: nn.AdaptiveAvgPool2d(1), [8, 5, 5], 13),
    ("linear", "Linear 16->8 on [N,16] (Gemm)", lambda: nn.Linear(16, 8), [16], 13),
    ("linear_3d", "Linear 16->8 on [N,4,16] (MatMul + Add)", lambda: nn.Linear(16, 8), [4, 16], 13),
    ("matmul", "x @ W, [N,4,8] x [8,6] (MatMul)",
     lambda: Lambda(lambda s, x: x @ s.w, w=nn.Parameter(torch.randn(8, 6))), [4, 8], 13),
    ("layernorm", "nn.LayerNorm(16) on [N,4,16], opset 17 (LayerNormalization)",
     lambda: nn.LayerNorm(16), [4, 16], 17),
    ("layernorm_opset13", "nn.LayerNorm(16) on [N,4,16], opset 13 (ReduceMean/Sub/Pow/Sqrt/Div)",
     lambda: nn.LayerNorm(16), [4, 16], 13),
    ("groupnorm", "GroupNorm(2 groups, 8 channels)", lambda: nn.GroupNorm(2, 8), [8, 4, 4], 13),
    ("instancenorm", "InstanceNorm2d(8, affine)", lambda: nn.InstanceNorm2d(8, affine=True), [8, 4, 4], 13),
    ("attention", "single-head self-attention, (QK^T) / 4.0 scalar divide, softmax, residual, [N,8,16]",
     make_attention, [8, 16], 13),
    ("softmax", "Softmax over the last axis", lambda: nn.Softmax(-1), [10], 13),
    ("gelu", "nn.GELU (exact, Erf)", lambda: nn.Sequential(nn.Linear(16, 16), nn.GELU()), [16], 13),
    ("relu6", "nn.ReLU6 (Clip with min/max inputs, opset 13)",
     lambda: Lambda(lambda s, x: F.relu6(x * 4.0)), [16], 13),
    ("clip", "torch.clamp(x, -0.5, 0.5) (Clip, opset 13)", lambda: Lambda(lambda s, x: x.clamp(-0.5, 0.5)), [16], 13),
    ("leaky_relu", "LeakyReLU(0.1)", lambda: nn.LeakyReLU(0.1), [16], 13),
    ("sigmoid", "Sigmoid", lambda: nn.Sigmoid(), [16], 13),
    ("silu", "SiLU (x * sigmoid(x))", lambda: nn.SiLU(), [16], 13),
    ("view_flatten", "conv, x.view(x.size(0), -1), Linear (Shape/Gather/Concat/Reshape)",
     lambda: Lambda(lambda s, x: s.fc(s.conv(x).view(x.size(0), -1)), conv=conv(4, 4, 1), fc=nn.Linear(64, 8)),
     [4, 4, 4], 13),
    ("flatten", "conv, nn.Flatten(1), Linear (Flatten)",
     lambda: Lambda(lambda s, x: s.fc(torch.flatten(s.conv(x), 1)), conv=conv(4, 4, 1), fc=nn.Linear(64, 8)),
     [4, 4, 4], 13),
    ("mean_keepdim", "conv, x.mean((2, 3), keepdim=True) (ReduceMean)",
     lambda: Lambda(lambda s, x: s.conv(x).mean((2, 3), keepdim=True), conv=conv(4, 8, 1)), [4, 5, 5], 13),
    ("transpose", "x.transpose(1, 2) then Linear on [N,4,6]",
     lambda: Lambda(lambda s, x: s.fc(x.transpose(1, 2)), fc=nn.Linear(4, 5)), [4, 6], 13),
    ("concat", "torch.cat of two convs on channels",
     lambda: Lambda(lambda s, x: torch.cat([s.a(x), s.b(x)], 1), a=conv(4, 3), b=conv(4, 5, 1)), [4, 6, 6], 13),
    ("chunk", "x.chunk(2, dim=1), a * sigmoid(b) (GLU-like; Split, opset 13)",
     lambda: Lambda(lambda s, x: (lambda a, b: a * torch.sigmoid(b))(*s.conv(x).chunk(2, 1)), conv=conv(4, 8, 1)),
     [4, 5, 5], 13),
    ("split", "torch.split(x, [3, 5], dim=1), then concat of conv(a) and b",
     lambda: Lambda(lambda s, x: (lambda a, b: torch.cat([s.conv(a), b], 1))(*torch.split(x, [3, 5], 1)),
                    conv=conv(3, 2, 1)), [8, 4, 4], 13),
    ("pad", "F.pad(x, (1, 2, 1, 2)) zeros, then conv (Pad, opset 13)",
     lambda: Lambda(lambda s, x: s.conv(F.pad(x, (1, 2, 1, 2))), conv=conv(4, 4, 3, padding=0)), [4, 6, 6], 13),
    ("pad_reflect", "F.pad(x, (1, 1, 1, 1), mode='reflect'), then conv",
     lambda: Lambda(lambda s, x: s.conv(F.pad(x, (1, 1, 1, 1), mode="reflect")), conv=conv(4, 4, 3, padding=0)),
     [4, 6, 6], 13),
    ("upsample_nearest", "nn.Upsample(scale_factor=2, mode='nearest') (Resize)",
     lambda: nn.Upsample(scale_factor=2, mode="nearest"), [4, 5, 5], 13),
    ("upsample_bilinear", "nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False) (Resize)",
     lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), [4, 5, 5], 13),
    ("convtranspose", "ConvTranspose2d 8->4, kernel 2, stride 2",
     lambda: nn.ConvTranspose2d(8, 4, 2, stride=2), [8, 4, 4], 13),
]


def pattern_seed(name):
    return SEED + zlib.crc32(name.encode()) % 100000


def build(name, factory, in_dims):
    seed = pattern_seed(name)
    torch.manual_seed(seed)
    model = randomized(factory(), torch.Generator().manual_seed(seed + 1)).eval()
    gen = torch.Generator().manual_seed(seed + 2)
    x = torch.randn([BATCH] + in_dims, generator=gen).numpy()
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    return model, x, y


def write_pattern(out, name, factory, in_dims, opset):
    model, x, y = build(name, factory, in_dims)
    first = None
    for backend in BACKENDS:
        model_name = f"{name}__{backend}"
        model_dir = os.path.join(out, model_name)
        onnx_path = os.path.join(model_dir, "1", "model.onnx")
        if first is None:
            export(model, torch.from_numpy(x[:1]), onnx_path, "x", "y", opset=opset)
            first = onnx_path
        else:
            os.makedirs(os.path.dirname(onnx_path), exist_ok=True)
            shutil.copyfile(first, onnx_path)
        write_config(model_dir, model_name, 8, [("x", list(x.shape[1:]))], [("y", list(y.shape[1:]))],
                     preferred=[], delay_us=0, threads=2, backend=backend,
                     parameters={"inference_precision": "f32"} if backend == "openvino" else None,
                     written_by="tools/make_coverage_blocks.py")
        write_reference_samples(os.path.join(model_dir, "1"),
                                [{"name": "s0", "inputs": [("x", x)], "outputs": [("y", y)]}],
                                comment="tools/make_coverage_blocks.py")
    return list(x.shape), list(y.shape)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="repository folder to write (its pattern folders are replaced)")
    p.add_argument("--pattern", action="append", help="only these patterns (repeatable)")
    p.add_argument("--list", action="store_true", help="print the JSON list and write nothing")
    args = p.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    wanted = set(args.pattern or [])
    unknown = wanted - {name for name, *_ in PATTERNS}
    if unknown:
        sys.exit(f"unknown patterns: {sorted(unknown)}")
    listing = []
    for name, description, factory, in_dims, opset in PATTERNS:
        if wanted and name not in wanted:
            continue
        entry = {"pattern": name, "description": description, "opset": opset}
        if not args.list:
            for backend in BACKENDS:
                shutil.rmtree(os.path.join(args.out, f"{name}__{backend}"), ignore_errors=True)
            entry["input_shape"], entry["output_shape"] = write_pattern(args.out, name, factory, in_dims, opset)
        listing.append(entry)
    json.dump(listing, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
