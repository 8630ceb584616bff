"""The text features Ferry's `preprocess: {text: ...}` block computes (src/preprocess/text_features.cc),
in Python for the trainer: hashed character n-gram counts of " " + text + " " (ASCII-lowercased), each
n-gram hashed with 32-bit FNV-1a over its length byte and then its bytes, the vector scaled to unit
length. tests/unit/preprocess/text_features_test.cc checks the C++ against numbers from this file."""
import numpy as np

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
MASK = 0xFFFFFFFF


def text_features(text, buckets, ngram_min=1, ngram_max=3, lowercase=True):
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if lowercase:
        data = bytes(c + 32 if 65 <= c <= 90 else c for c in data)
    padded = b" " + data + b" "
    counts = np.zeros(buckets, dtype=np.float64)
    for n in range(ngram_min, ngram_max + 1):
        seed = ((FNV_OFFSET ^ n) * FNV_PRIME) & MASK
        for i in range(len(padded) - n + 1):
            h = seed
            for c in padded[i:i + n]:
                h = ((h ^ c) * FNV_PRIME) & MASK
            counts[h % buckets] += 1.0
    norm = np.sqrt((counts * counts).sum())
    return (counts / norm if norm > 0 else counts).astype(np.float32)
