#!/usr/bin/python3
"""Writes a benchmark-sized llama GGUF with random weights, for measuring Ferry's llama_cpp backend against
llama.cpp's own tools (llama-bench, llama-server). Made on demand, never committed.

    /usr/bin/python3 tools/make_bench_llm.py [--out bench/results/bench-llm.gguf] [--q8] [--bench]

Shape: dim 512, 8 layers, 8 heads, SwiGLU FFN 1408, context 4096, about 26 M parameters (50 MB in F16).
The tokenizer is tiny_llm's (tools/llm_gguf.py) over all printable ASCII, so text prompts tokenize the same
way; the text it writes is noise, which does not matter for timing. Speed depends on the shape, not on the
values, but the values are kept well-scaled (GPT-2 style init) so logits and attention are not degenerate.

--q8 also writes a Q8_0 copy next to it (<out stem>-q8_0.gguf) with llama-quantize; --bench runs
llama-bench -t 2 -p 512 -n 128 on what was written. Both tools are built by scripts/build-llama-tools.sh
when missing. Needs numpy and pyyaml (for gguf-py), not torch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llm_gguf  # noqa: E402
from llm_gguf import REPO_ROOT, LlamaShape  # noqa: E402

MODEL_NAME = "ferry-bench-llm"
SEED = 4321


def random_llama_tensors(shape: LlamaShape, seed: int, end_token_ids: list[int]) -> dict[str, np.ndarray]:
    """Weights in F16 (norms F32 and 1.0, as llama.cpp requires 1-D tensors to be F32). The tokens in
    end_token_ids are made (practically) never generated, so a benchmark's generation runs to its limit."""
    rng = np.random.default_rng(seed)
    d, f = shape.dim, shape.ffn_dim
    kv_dim = shape.kv_heads * shape.head_dim
    base_std = 0.02
    residual_std = base_std / np.sqrt(2 * shape.n_layers)  # keeps the residual stream's growth in check

    def weight(rows: int, cols: int, std: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * std).astype(np.float16)

    def norm(size: int) -> np.ndarray:
        return np.ones(size, dtype=np.float32)

    # Embedding rows are looked up, not projected: a larger scale gives the first layer a usable signal.
    embeddings = rng.standard_normal((shape.vocab_size, d), dtype=np.float32)
    # Dimension 0 of every embedding is a constant; the layers add little to the residual stream, so it
    # stays positive up to the output, where it acts as a bias that pushes the end tokens' logits down.
    # Without it, random logits pick </s> or <|im_end|> within a few dozen tokens about a third of the time.
    embeddings[:, 0] = 4.0
    tensors = {"token_embd.weight": embeddings.astype(np.float16)}
    for layer in range(shape.n_layers):
        prefix = f"blk.{layer}."
        tensors[prefix + "attn_norm.weight"] = norm(d)
        # A larger query/key scale makes attention scores vary (softmax not flat over the context).
        tensors[prefix + "attn_q.weight"] = weight(d, d, 1.0 / np.sqrt(d))
        tensors[prefix + "attn_k.weight"] = weight(kv_dim, d, 1.0 / np.sqrt(d))
        tensors[prefix + "attn_v.weight"] = weight(kv_dim, d, base_std)
        tensors[prefix + "attn_output.weight"] = weight(d, d, residual_std)
        tensors[prefix + "ffn_norm.weight"] = norm(d)
        tensors[prefix + "ffn_gate.weight"] = weight(f, d, base_std)
        tensors[prefix + "ffn_up.weight"] = weight(f, d, base_std)
        tensors[prefix + "ffn_down.weight"] = weight(d, f, residual_std)
    tensors["output_norm.weight"] = norm(d)
    # After the final RMS norm the hidden state has unit scale; this gives logits with a spread of ~2.
    output = weight(shape.vocab_size, d, 2.0 / np.sqrt(d))
    output[end_token_ids, 0] = -5.0
    tensors["output.weight"] = output
    return tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results/bench-llm.gguf")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--ffn", type=int, default=1408)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--q8", action="store_true", help="also write a Q8_0 copy with llama-quantize")
    parser.add_argument("--bench", action="store_true", help="run llama-bench -t 2 -p 512 -n 128 on the result")
    args = parser.parse_args()

    vocab = llm_gguf.build_char_vocab(llm_gguf.PRINTABLE_ASCII)
    shape = LlamaShape(vocab_size=len(vocab), dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                       ffn_dim=args.ffn, context_length=args.context)
    tensors = random_llama_tensors(shape, SEED, end_token_ids=[vocab.eos_id, vocab.im_end_id])
    params = sum(t.size for t in tensors.values())
    llm_gguf.write_llama_gguf(args.out, name=MODEL_NAME, shape=shape, vocab=vocab, tensors=tensors,
                              file_type=llm_gguf.gguf.LlamaFileType.MOSTLY_F16)
    written = [args.out]
    print(f"wrote {args.out} ({params / 1e6:.1f} M parameters, {args.out.stat().st_size / 1e6:.1f} MB, F16)")

    if args.q8:
        q8_file = args.out.with_name(args.out.stem + "-q8_0.gguf")
        llm_gguf.quantize(args.out, q8_file, "Q8_0")
        written.append(q8_file)
        print(f"wrote {q8_file} ({q8_file.stat().st_size / 1e6:.1f} MB, Q8_0)")

    if args.bench:
        bench = llm_gguf.llama_tool("llama-bench")
        for model_file in written:
            subprocess.run([str(bench), "-m", str(model_file), "-t", "2", "-p", "512", "-n", "128"], check=True)


if __name__ == "__main__":
    main()
