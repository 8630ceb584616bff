"""Shared by tools/make_tiny_llm.py and tools/make_bench_llm.py: the character-level SPM vocabulary, the
GGUF writer for a llama-architecture model, and the call to llama.cpp's llama-quantize.

The vocabulary is what llama.cpp's SPM ("llama") tokenizer needs to tokenize any text with single-character
pieces and byte fallback:
  0 <unk> (UNKNOWN), 1 <s> (CONTROL, BOS), 2 </s> (CONTROL, EOS),
  3..258 <0x00>..<0xFF> (BYTE),
  then <|im_start|> and <|im_end|> (CONTROL; llama.cpp recognises <|im_end|> by its text as end of turn),
  then one NORMAL piece per character, the space written as "▁".
With only single-character pieces the SPM merge loop never merges, so a string tokenizes to one id per
character, and a character without a piece (newline, tab, non-ASCII) to the ids of its UTF-8 bytes.
`CharVocab.encode` reproduces exactly that, so training data matches what llama.cpp feeds the model.

Tensors are named and laid out the way llama.cpp's "llama" architecture loads them: numpy arrays in
PyTorch's nn.Linear layout [out, in] (GGUF reverses the shape to ggml's [in, out]). RoPE is llama.cpp's
normal mode, which rotates adjacent pairs (x[2i], x[2i+1]); a model trained that way needs no permutation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
LLAMA_SOURCE = REPO_ROOT / "third_party" / "llama.cpp"
LLAMA_TOOLS_BIN = REPO_ROOT / "build" / "llama-tools" / "bin"

# gguf-py ships inside the llama.cpp source (scripts/install-llama.sh); it needs only numpy and pyyaml.
sys.path.insert(0, str(LLAMA_SOURCE / "gguf-py"))
import gguf  # noqa: E402

SPACE_PIECE = "\u2581"  # "▁", SentencePiece's visible space
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# The usual ChatML template. llama.cpp's llama_chat_apply_template detects it as "chatml" from the
# <|im_start|> it contains; Jinja-based front ends (llama-server --jinja) run it as written.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))


@dataclass
class CharVocab:
    tokens: list[str] = field(default_factory=list)
    token_types: list[int] = field(default_factory=list)
    char_to_id: dict[str, int] = field(default_factory=dict)
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    byte_base_id: int = 3
    im_start_id: int = -1
    im_end_id: int = -1

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids for plain text, as llama.cpp's SPM tokenizer (add_space_prefix=false) produces them."""
        ids: list[int] = []
        for ch in text:
            piece_id = self.char_to_id.get(ch)
            if piece_id is not None:
                ids.append(piece_id)
            else:
                ids.extend(self.byte_base_id + b for b in ch.encode("utf-8"))
        return ids

    def decode(self, ids: list[int]) -> str:
        """Text for ids; control tokens are written out, bytes reassembled as UTF-8."""
        out = bytearray()
        for i in ids:
            if self.byte_base_id <= i < self.byte_base_id + 256:
                out.append(i - self.byte_base_id)
            else:
                piece = self.tokens[i]
                out.extend((" " if piece == SPACE_PIECE else piece).encode("utf-8"))
        return out.decode("utf-8", errors="replace")


def build_char_vocab(characters: str | set[str]) -> CharVocab:
    """A vocabulary with one piece per given character (sorted, so the ids do not depend on input order)."""
    vocab = CharVocab()

    def add(piece: str, token_type: gguf.TokenType) -> int:
        vocab.tokens.append(piece)
        vocab.token_types.append(int(token_type))
        return len(vocab.tokens) - 1

    vocab.unk_id = add("<unk>", gguf.TokenType.UNKNOWN)
    vocab.bos_id = add("<s>", gguf.TokenType.CONTROL)
    vocab.eos_id = add("</s>", gguf.TokenType.CONTROL)
    vocab.byte_base_id = len(vocab.tokens)
    for b in range(256):
        add(f"<0x{b:02X}>", gguf.TokenType.BYTE)  # llama.cpp parses exactly this spelling
    vocab.im_start_id = add(IM_START, gguf.TokenType.CONTROL)
    vocab.im_end_id = add(IM_END, gguf.TokenType.CONTROL)
    for ch in sorted(set(characters)):
        if not ch.isprintable():
            continue  # newline, tab and the like go through byte fallback, as in LLaMA's own vocabulary
        piece = SPACE_PIECE if ch == " " else ch
        vocab.char_to_id[ch] = add(piece, gguf.TokenType.NORMAL)
    return vocab


@dataclass
class LlamaShape:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    context_length: int
    n_kv_heads: int | None = None
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads


def write_llama_gguf(
    path: str | os.PathLike[str],
    *,
    name: str,
    shape: LlamaShape,
    vocab: CharVocab,
    tensors: dict[str, np.ndarray],
    file_type: gguf.LlamaFileType,
    chat_template: str = CHATML_TEMPLATE,
) -> None:
    """Writes a llama-architecture GGUF. `tensors` maps llama.cpp tensor names (token_embd.weight,
    blk.N.attn_q.weight, ...) to arrays; 1-D tensors (norm weights) must be float32."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_file_type(int(file_type))
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(shape.dim)
    writer.add_block_count(shape.n_layers)
    writer.add_feed_forward_length(shape.ffn_dim)
    writer.add_head_count(shape.n_heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_layer_norm_rms_eps(shape.norm_eps)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_base)
    writer.add_vocab_size(len(vocab))

    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    # SPM merges by score; all pieces are single characters, so the scores only need to be distinct.
    writer.add_token_scores([0.0 if t != gguf.TokenType.NORMAL else -float(i) for i, t in enumerate(vocab.token_types)])
    writer.add_token_types(vocab.token_types)
    writer.add_unk_token_id(vocab.unk_id)
    writer.add_bos_token_id(vocab.bos_id)
    writer.add_eos_token_id(vocab.eos_id)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    # The default for SPM is a leading space before the first word; the model is trained without one.
    writer.add_add_space_prefix(False)
    writer.add_chat_template(chat_template)

    for tensor_name, array in tensors.items():
        if array.ndim == 1 and array.dtype != np.float32:
            raise ValueError(f"{tensor_name}: 1-D tensors must be float32 for llama.cpp")
        writer.add_tensor(tensor_name, np.ascontiguousarray(array))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama_tool(name: str) -> Path:
    """Path of a llama.cpp command-line tool, built by scripts/build-llama-tools.sh if it is missing."""
    binary = LLAMA_TOOLS_BIN / name
    if not binary.exists():
        print(f"building {name} with scripts/build-llama-tools.sh (a few minutes the first time)", flush=True)
        subprocess.run([str(REPO_ROOT / "scripts" / "build-llama-tools.sh"), name], check=True)
    return binary


def quantize(source: Path, destination: Path, quant_type: str, threads: int = 2) -> None:
    """Runs llama-quantize (quant_type e.g. "Q8_0" or "Q4_0"); its log is printed only if it fails."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(llama_tool("llama-quantize")), str(source), str(destination), quant_type, str(threads)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout)
        raise SystemExit(f"llama-quantize {quant_type} failed for {source}")
