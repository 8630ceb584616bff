"""Writes reference samples in the format Ferry checks at load (src/repository/reference_set.h).

Needs only numpy, so that every model-making tool can use it, the int8 script's OpenVINO stage (which
has no torch) included.
"""
import os

import numpy as np


def yaml_dims(dims):
    return "[" + ", ".join(str(d) for d in dims) + "]"


DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64", np.dtype(np.float16): "FP16",
             np.dtype(np.int8): "INT8", np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32",
             np.dtype(np.int64): "INT64", np.dtype(np.uint8): "UINT8", np.dtype(np.uint16): "UINT16",
             np.dtype(np.uint32): "UINT32", np.dtype(np.uint64): "UINT64", np.dtype(np.bool_): "BOOL"}

DEFAULT_TOLERANCE = (1.0e-4, 1.0e-3)  # (absolute, relative)


def yaml_float(v):
    """1e-4 -> '1.0e-4', 0 -> '0'; a plain, locale-free spelling any YAML reader takes as a float."""
    v = float(v)
    if v == 0.0:
        return "0"
    mantissa, exponent = f"{v:.6e}".split("e")
    mantissa = mantissa.rstrip("0")
    if mantissa.endswith("."):
        mantissa += "0"
    return f"{mantissa}e{int(exponent)}"


def yaml_tolerance(tol):
    return f"{{absolute: {yaml_float(tol[0])}, relative: {yaml_float(tol[1])}}}"


def write_reference_samples(version_dir, samples, tolerance=DEFAULT_TOLERANCE, comment=None, framework="PyTorch"):
    """Writes <version_dir>/reference/reference.yaml and one raw little-endian row-major file per tensor.

    samples: [{"name": "s0", "inputs": [(name, array)], "outputs": [(name, array)],
               "tolerance": (absolute, relative) or absent}]. Arrays carry the batch dimension when the
    model has max_batch_size > 0. The check Ferry runs at load (numpy.allclose's rule): an element
    passes when |got - want| <= absolute + relative * |want|; integer and bool outputs match exactly.
    Needs only numpy (the int8 script's OpenVINO stage has no torch)."""
    ref_dir = os.path.join(version_dir, "reference")
    if os.path.isdir(ref_dir):
        for f in os.listdir(ref_dir):
            os.remove(os.path.join(ref_dir, f))
    os.makedirs(ref_dir, exist_ok=True)

    def entry(sample, name, array):
        array = np.ascontiguousarray(array)
        file = f"{sample}.{name}.bin"
        with open(os.path.join(ref_dir, file), "wb") as f:
            f.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        return (f"      - {{name: {name}, datatype: {DATATYPES[array.dtype]}, "
                f"shape: {yaml_dims(array.shape)}, file: {file}}}")

    lines = ["# Written by " + (comment or "tools/make_example_models.py") + f"; inputs and the {framework} outputs.",
             "# An element passes when |got - want| <= absolute + relative * |want| (numpy.allclose's rule);",
             "# integer/bool/BYTES outputs must match exactly. Files: raw little-endian row-major elements.",
             f"tolerance: {yaml_tolerance(tolerance)}",
             "samples:"]
    for sample in samples:
        lines.append(f"  - name: {sample['name']}")
        if sample.get("tolerance") is not None:
            lines.append(f"    tolerance: {yaml_tolerance(sample['tolerance'])}")
        lines.append("    inputs:")
        lines += [entry(sample["name"], n, a) for n, a in sample["inputs"]]
        lines.append("    outputs:")
        lines += [entry(sample["name"], n, a) for n, a in sample["outputs"]]
    with open(os.path.join(ref_dir, "reference.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
