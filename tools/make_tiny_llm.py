#!/usr/bin/python3
"""Trains Ferry's tiny test LLM and writes it as GGUF for the llama_cpp backend.

Run with Debian's Python (python3-torch 1.13, numpy, pyyaml):

    /usr/bin/python3 tools/make_tiny_llm.py [--q8-out ...] [--q4-out ...] [--work-dir ...] [--no-check]

What it makes: a llama-architecture, character-level model (4 layers, dim 128, 4 heads, SwiGLU FFN 384,
about 0.9 M parameters) trained for 600 steps (5 minutes on two idle cores, 10 when other work shares
them) on English text every Debian machine has (/usr/share/common-licenses, plus plain-text documentation
under /usr/share/doc). It writes English-ish words, not sense, and greedy decoding soon loops ("the
source and the source"); it exists so tests and benchmarks have a real GGUF that llama.cpp loads,
tokenizes and chats with (ChatML). Sampled ChatML replies almost always end with <|im_end|> after a
sentence; greedy ones usually run to the token limit.

Outputs:
  <work-dir>/tiny_llm-f32.gguf           the trained weights in F32 (not committed)
  examples/models/tiny_llm/1/model.gguf     Q8_0, with its config.yaml
  examples/models/tiny_llm_q4/1/model.gguf  Q4_0, with its config.yaml
The quantised copies are made by llama.cpp's llama-quantize (built by scripts/build-llama-tools.sh when
missing). Unless --no-check, llama-completion then continues a plain prompt greedily and answers four
ChatML prompts (greedy and sampled), and the script counts the replies that end with <|im_end|>.

Deterministic given the same files on the machine: the file list is sorted, all randomness is seeded, and
the step count is fixed (not a time budget). The machine's /usr/share/doc decides part of the corpus, so
another machine can train a slightly different model; the committed files are the reference.

Tokenizer (see tools/llm_gguf.py): one SPM piece per printable ASCII character in the corpus, byte fallback
for everything else (newline included), <s> as BOS (added by llama.cpp), <|im_start|>/<|im_end|> as control
tokens, add_space_prefix=false, and the ChatML chat template.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Torch's OpenMP threads spin while OpenBLAS runs its own threads for each matmul; on two cores that
# spinning halves the speed. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llm_gguf  # noqa: E402
from llm_gguf import IM_END, IM_START, REPO_ROOT, CharVocab, LlamaShape  # noqa: E402

MODEL_NAME = "ferry-tiny-llm"
SEED = 1234
CONTEXT_LENGTH = 1024

LICENSE_DIR = Path("/usr/share/common-licenses")
DOC_DIR = Path("/usr/share/doc")
DOC_SUFFIXES = {".txt", ".md", ".rst"}
# The licenses (~230 KB) stay about half of the corpus: their repetitive, plain English is what a
# few minutes of training can learn; the documentation adds variety. The per-package cap keeps one
# package with many notes (git's release notes) from drowning the rest.
DOC_BYTES_PER_PACKAGE = 12 * 1024
DOC_BYTES_TOTAL = 256 * 1024

CONFIG_TEMPLATE = """\
# Written by tools/make_tiny_llm.py; edit the script, not this file.
name: {name}
backend: llama_cpp
platform: gguf
model_filename: model.gguf
max_queue_size: 64
instance_group: {{count: 1, threads: 2}}
parameters: {{slots: 4, context_per_slot: 1024, batch_tokens: 512}}
"""


# ---------------------------------------------------------------------------------------------- corpus

def looks_like_prose(text: str) -> bool:
    """Mostly ASCII letters and spaces: skips logs, tables, code listings and non-English files."""
    if len(text) < 500:
        return False
    ascii_share = sum(1 for c in text if c < "\x80") / len(text)
    letter_share = sum(1 for c in text if c.isalpha() or c == " ") / len(text)
    return ascii_share > 0.99 and letter_share > 0.75


def normalise(text: str) -> str:
    """Tabs and runs of spaces become one space, and at most one blank line in a row is kept."""
    text = text.replace("\r", "").replace("\f", "\n")
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def read_corpus(use_docs: bool) -> list[tuple[str, str]]:
    """(path, text) pairs in a fixed order: the licenses (symlinked aliases read once), then documentation."""
    documents: list[tuple[str, str]] = []
    seen: set[Path] = set()
    for path in sorted(LICENSE_DIR.iterdir()):
        real = path.resolve()
        if real in seen or not real.is_file():
            continue
        seen.add(real)
        documents.append((str(path), normalise(real.read_text(encoding="utf-8", errors="replace"))))
    if not use_docs or not DOC_DIR.is_dir():
        return documents

    doc_bytes = 0
    for package in sorted(p for p in DOC_DIR.iterdir() if p.is_dir()):
        package_bytes = 0
        for dirpath, dirnames, filenames in os.walk(package):
            dirnames.sort()
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if path.suffix.lower() not in DOC_SUFFIXES and not filename.upper().startswith("README"):
                    continue
                if path.is_symlink() or not path.is_file() or path.resolve() in seen:
                    continue
                seen.add(path.resolve())
                try:
                    text = path.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
                if not looks_like_prose(text):
                    continue
                text = normalise(text)[: DOC_BYTES_PER_PACKAGE - package_bytes]
                if len(text) < 500:
                    continue
                documents.append((str(path), text))
                package_bytes += len(text)
                doc_bytes += len(text)
                if package_bytes >= DOC_BYTES_PER_PACKAGE or doc_bytes >= DOC_BYTES_TOTAL:
                    break
            if package_bytes >= DOC_BYTES_PER_PACKAGE or doc_bytes >= DOC_BYTES_TOTAL:
                break
        if doc_bytes >= DOC_BYTES_TOTAL:
            break
    return documents


def split_sentences(text: str) -> list[str]:
    """Sentences of ordinary length from running text, for the ChatML samples."""
    flat = re.sub(r"\s+", " ", text)
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat)
    # Short sentences: a model this small, decoding greedily, rarely picks "." over " " after a long
    # run of words, so replies that end early are what teaches it to close a turn at all.
    return [s.strip() for s in sentences if 20 <= len(s.strip()) <= 100]


def chat_sample(sentences: list[str], rng: random.Random) -> str:
    """A user turn with one sentence and an assistant turn with the next one (a quarter of the time two),
    in ChatML: the exact text llama.cpp's "chatml" template produces, so the model learns to close
    the assistant turn with <|im_end|>."""
    start = rng.randrange(len(sentences) - 3)
    reply = " ".join(sentences[start + 1: start + 1 + (2 if rng.random() < 0.25 else 1)])
    return (f"{IM_START}user\n{sentences[start]}{IM_END}\n"
            f"{IM_START}assistant\n{reply}{IM_END}\n")


def encode_chat(text: str, vocab: CharVocab) -> list[int]:
    """Like CharVocab.encode, with <|im_start|>/<|im_end|> as their control tokens (llama.cpp's parse_special)."""
    ids: list[int] = []
    for part in re.split(f"({re.escape(IM_START)}|{re.escape(IM_END)})", text):
        if part == IM_START:
            ids.append(vocab.im_start_id)
        elif part == IM_END:
            ids.append(vocab.im_end_id)
        elif part:
            ids.extend(vocab.encode(part))
    return ids


# ----------------------------------------------------------------------------------------------- model

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim: int, length: int, base: float):
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """llama.cpp's normal RoPE: rotates adjacent pairs (x[2i], x[2i+1]). x: [batch, heads, time, head_dim]."""
    pairs = x.unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2)


class Block(nn.Module):
    def __init__(self, shape: LlamaShape):
        super().__init__()
        self.shape = shape
        d, f = shape.dim, shape.ffn_dim
        self.attn_norm = RMSNorm(d, shape.norm_eps)
        self.attn_q = nn.Linear(d, d, bias=False)
        self.attn_k = nn.Linear(d, d, bias=False)
        self.attn_v = nn.Linear(d, d, bias=False)
        self.attn_output = nn.Linear(d, d, bias=False)
        self.ffn_norm = RMSNorm(d, shape.norm_eps)
        self.ffn_gate = nn.Linear(d, f, bias=False)
        self.ffn_up = nn.Linear(d, f, bias=False)
        self.ffn_down = nn.Linear(f, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        h, hd = self.shape.n_heads, self.shape.head_dim
        y = self.attn_norm(x)
        q = self.attn_q(y).view(b, t, h, hd).transpose(1, 2)
        k = self.attn_k(y).view(b, t, h, hd).transpose(1, 2)
        v = self.attn_v(y).view(b, t, h, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        attn = scores.masked_fill(mask, float("-inf")).softmax(-1) @ v
        x = x + self.attn_output(attn.transpose(1, 2).reshape(b, t, d))
        y = self.ffn_norm(x)
        return x + self.ffn_down(F.silu(self.ffn_gate(y)) * self.ffn_up(y))


class TinyLlama(nn.Module):
    def __init__(self, shape: LlamaShape):
        super().__init__()
        self.shape = shape
        self.token_embd = nn.Embedding(shape.vocab_size, shape.dim)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layers))
        self.output_norm = RMSNorm(shape.dim, shape.norm_eps)
        self.output = nn.Linear(shape.dim, shape.vocab_size, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                # GPT-2 style: small weights, residual projections scaled down by depth.
                is_residual_projection = name.endswith(("attn_output.weight", "ffn_down.weight"))
                std = 0.02 / math.sqrt(2 * shape.n_layers) if is_residual_projection else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, tokens):
        t = tokens.shape[1]
        cos, sin = rope_tables(self.shape.head_dim, t, self.shape.rope_base)
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        x = self.token_embd(tokens)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.output(self.output_norm(x))

    def gguf_tensors(self) -> dict[str, np.ndarray]:
        """Parameters under llama.cpp's tensor names; nn.Linear's [out, in] is already the layout it wants."""
        tensors = {}
        for name, p in self.state_dict().items():
            gguf_name = name.replace("blocks.", "blk.")
            tensors[gguf_name] = p.detach().to(torch.float32).numpy().copy()
        return tensors

    @torch.no_grad()
    def generate_greedy(self, ids: list[int], max_new: int, stop_id: int | None = None) -> list[int]:
        out = list(ids)
        for _ in range(max_new):
            next_id = int(self(torch.tensor([out[-CONTEXT_LENGTH:]]))[0, -1].argmax())
            out.append(next_id)
            if next_id == stop_id:
                break
        return out[len(ids):]


# -------------------------------------------------------------------------------------------- training

def make_batch(plain: np.ndarray, chat_stream: np.ndarray, chat_starts: np.ndarray, vocab: CharVocab,
               rng: np.random.Generator, batch: int, length: int, chat_share: float) -> torch.Tensor:
    """Rows of length+1 tokens, each starting with <s> as llama.cpp prompts do: a random window of the
    plain corpus, or (chat_share of the rows) ChatML exchanges from the start of one, like a chat prompt."""
    rows = np.empty((batch, length + 1), dtype=np.int64)
    rows[:, 0] = vocab.bos_id
    for r in range(batch):
        if rng.random() < chat_share:
            start = chat_starts[rng.integers(len(chat_starts))]
            rows[r, 1:] = chat_stream[start:start + length]
        else:
            start = rng.integers(len(plain) - length)
            rows[r, 1:] = plain[start:start + length]
    return torch.from_numpy(rows)


def train(model: TinyLlama, plain: np.ndarray, chat_stream: np.ndarray, chat_starts: np.ndarray,
          vocab: CharVocab, args) -> float:
    rng = np.random.default_rng(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, args.steps // 20)
    started = time.monotonic()
    recent: list[float] = []
    for step in range(args.steps):
        # Short windows most of the time (cheap), full-length ones every few steps so positions up to
        # the GGUF's context are not out of distribution.
        length = args.long_seq if step % args.long_every == args.long_every - 1 else args.seq
        batch_size = max(1, args.batch * args.seq // length)
        rows = make_batch(plain, chat_stream, chat_starts, vocab, rng, batch_size, length, args.chat_share)
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits = model(rows[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recent = (recent + [loss.item()])[-50:]
        if step % 100 == 0 or step == args.steps - 1:
            elapsed = time.monotonic() - started
            print(f"step {step:5d}  loss {loss.item():.3f}  lr {lr:.2e}  {elapsed:6.1f}s", flush=True)
    return sum(recent) / len(recent)


# ------------------------------------------------------------------------------------------- outputs

def write_model_folder(gguf_source: Path, model_file: Path, quant_type: str) -> None:
    """<repo>/<name>/1/model.gguf from llama-quantize, and <repo>/<name>/config.yaml."""
    llm_gguf.quantize(gguf_source, model_file, quant_type)
    model_dir = model_file.parent.parent
    (model_dir / "config.yaml").write_text(CONFIG_TEMPLATE.format(name=model_dir.name))
    size_mb = model_file.stat().st_size / 1e6
    print(f"wrote {model_file} ({size_mb:.2f} MB, {quant_type}) and {model_dir / 'config.yaml'}")


CHECK_QUESTIONS = [
    "You may copy and distribute the Program.",
    "What does the license say about warranty?",
    "Please describe the source code.",
    "This program is free software.",
]


def run_completion(model_file: Path, prompt: str, max_tokens: int, temperature: float = 0.0,
                   seed: int = SEED) -> str:
    """Generation with llama.cpp's llama-completion (greedy at temperature 0); --special prints control
    tokens such as <|im_end|>, and generation stops by itself after an end-of-generation token."""
    result = subprocess.run(
        [str(llm_gguf.llama_tool("llama-completion")), "-m", str(model_file), "-t", "2", "-c", "1024",
         "-n", str(max_tokens), "--temp", str(temperature), "--seed", str(seed), "--special", "-no-cnv",
         "--no-warmup", "--no-display-prompt", "-p", prompt],
        # A byte-fallback token can leave a partial UTF-8 sequence; show it as U+FFFD rather than fail.
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8", errors="replace", timeout=300,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit(f"llama-completion failed on {model_file}")
    return result.stdout.replace(" [end of text]", "").rstrip("\n")


def check_with_llama_cpp(model_file: Path) -> None:
    """llama.cpp itself must load the file, continue a plain prompt with English-ish text, and (often)
    close an assistant turn with <|im_end|>."""
    label = model_file.parent.parent.name
    print(f"llama.cpp [{label}] 'The license' -> {run_completion(model_file, 'The license', 160)!r}")
    greedy_closed = sampled_closed = 0
    sampled_seeds = range(1, 5)
    for question in CHECK_QUESTIONS:
        prompt = f"{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n"
        reply = run_completion(model_file, prompt, 300)
        greedy_closed += reply.endswith(IM_END)
        print(f"llama.cpp [{label}] chat {question!r} -> {reply!r}")
        for seed in sampled_seeds:
            reply = run_completion(model_file, prompt, 300, temperature=0.8, seed=seed)
            sampled_closed += reply.endswith(IM_END)
            if seed == sampled_seeds[0]:
                print(f"llama.cpp [{label}] chat {question!r} (temperature 0.8) -> {reply!r}")
    print(f"llama.cpp [{label}]: ChatML replies ending with {IM_END} within 300 tokens: "
          f"greedy {greedy_closed} of {len(CHECK_QUESTIONS)}, "
          f"temperature 0.8 {sampled_closed} of {len(CHECK_QUESTIONS) * len(sampled_seeds)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--q8-out", type=Path, default=REPO_ROOT / "examples/models/tiny_llm/1/model.gguf")
    parser.add_argument("--q4-out", type=Path, default=REPO_ROOT / "examples/models/tiny_llm_q4/1/model.gguf")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "ferry-tiny-llm",
                        help="where the F32 GGUF goes (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256, help="tokens per row on most steps")
    parser.add_argument("--long-seq", type=int, default=1024, help="tokens per row on every --long-every-th step")
    parser.add_argument("--long-every", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--chat-share", type=float, default=0.4, help="share of rows that are ChatML exchanges")
    parser.add_argument("--no-docs", action="store_true", help="train on /usr/share/common-licenses only")
    parser.add_argument("--no-check", action="store_true", help="skip the llama-completion check")
    args = parser.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(2)  # the machine has two cores
    random.seed(SEED)

    documents = read_corpus(use_docs=not args.no_docs)
    text = "\n".join(doc for _, doc in documents)
    print(f"corpus: {len(documents)} files, {len(text)} characters")

    vocab = llm_gguf.build_char_vocab({c for c in text if c in llm_gguf.PRINTABLE_ASCII})
    plain = np.array(vocab.encode(text), dtype=np.int64)
    sentence_rng = random.Random(SEED)
    sentences_by_doc = [s for s in (split_sentences(doc) for _, doc in documents) if len(s) >= 6]
    chats = [encode_chat(chat_sample(sentence_rng.choice(sentences_by_doc), sentence_rng), vocab)
             for _ in range(6000)]
    # One stream of exchanges, so a row that starts at one continues into the next (multi-turn).
    chat_starts = np.cumsum([0] + [len(c) for c in chats[:-1]])
    chat_stream = np.array([i for c in chats for i in c], dtype=np.int64)
    chat_starts = chat_starts[chat_starts + args.long_seq <= len(chat_stream)]
    print(f"vocabulary: {len(vocab)} tokens; {len(plain)} plain text tokens; "
          f"{len(chats)} ChatML exchanges ({len(chat_stream)} tokens)")

    shape = LlamaShape(vocab_size=len(vocab), dim=128, n_layers=4, n_heads=4, ffn_dim=384,
                       context_length=CONTEXT_LENGTH)
    model = TinyLlama(shape)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")

    started = time.monotonic()
    final_loss = train(model, plain, chat_stream, chat_starts, vocab, args)
    model.eval()
    print(f"trained {args.steps} steps in {time.monotonic() - started:.0f}s; "
          f"final loss (mean of the last 50 steps) {final_loss:.3f}")

    plain_prompt = [vocab.bos_id] + vocab.encode("The license")
    print("PyTorch greedy sample:", repr("The license" + vocab.decode(model.generate_greedy(plain_prompt, 160))))
    chat_prompt = [vocab.bos_id] + encode_chat(
        f"{IM_START}user\n{CHECK_QUESTIONS[0]}{IM_END}\n{IM_START}assistant\n", vocab)
    print("PyTorch greedy chat reply:", repr(vocab.decode(model.generate_greedy(chat_prompt, 200, vocab.im_end_id))))

    args.work_dir.mkdir(parents=True, exist_ok=True)
    f32_file = args.work_dir / "tiny_llm-f32.gguf"
    llm_gguf.write_llama_gguf(f32_file, name=MODEL_NAME, shape=shape, vocab=vocab,
                              tensors=model.gguf_tensors(), file_type=llm_gguf.gguf.LlamaFileType.ALL_F32)
    print(f"wrote {f32_file} ({f32_file.stat().st_size / 1e6:.2f} MB, F32)")

    write_model_folder(f32_file, args.q8_out, "Q8_0")
    write_model_folder(f32_file, args.q4_out, "Q4_0")
    if not args.no_check:
        check_with_llama_cpp(args.q8_out)
        check_with_llama_cpp(args.q4_out)


if __name__ == "__main__":
    main()
