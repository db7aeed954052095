#!/usr/bin/env python3
"""Reference logits of the real gemma-3-270m Q4_K_M file for Gemma3RealModelTests (checked in as reference.json).

For two lines of WikiText-2 valid.txt (tokenized by llama.cpp, BOS first) and a short prompt, the exact computation
of the file's weights (../shared/bench/gguf_ref.py, plain float64 mode: dequantized weights, float64 activations) is
stored per position as the 16 most likely ids with their log-probabilities and the full-vocabulary log-sum-exp, and
llama.cpp's (llama-cpp-python 0.3.36, one batch) top-16 the same way, for the tests' bounds.

  python make_reference.py --model ~/.cache/swift-lm/gemma-3-270m-q4_k_m.gguf
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("LM_SHARED", os.path.join(HERE, "..", "..", "..", "..", "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "bench"))


def top(logits, k):
    x = logits.astype(np.float64)
    m = x.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[:, 0]
    ids = np.argsort(-x, axis=-1, kind="stable")[:, :k]
    return ids, np.take_along_axis(x, ids, -1) - lse[:, None], lse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--k", type=int, default=16)
    a = ap.parse_args()
    import gguf_ref
    import llama_cpp as L
    from llamacpp_file import decode_all, open_model, tokenize
    model, ctx = open_model(L, a.model, 512, 2)
    lines = [t for t in open(os.path.join(SHARED, "data", "wikitext-2", "valid.txt"), encoding="utf-8").read().split("\n") if t.strip()]
    texts = ["The capital of France is", lines[1], lines[4]]
    ref = gguf_ref.Model(a.model, False, np.float64)
    out = {"model": os.path.basename(a.model), "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
           "k": a.k, "reference": "gguf_ref.py plain float64 (dequantized weights, float64 activations)",
           "llama_cpp": "llama-cpp-python 0.3.36, one batch per sequence, f16 KV cache", "sequences": []}
    for t in texts:
        ids = tokenize(L, model, t, True)
        e_ids, e_lp, e_lse = top(ref.forward(ids), a.k)
        L.llama_memory_clear(L.llama_get_memory(ctx), False)
        l_ids, l_lp, _ = top(np.array(decode_all(L, ctx, ids)), a.k)
        out["sequences"].append({"text": t, "ids": ids, "exact_top_ids": e_ids.tolist(),
                                 "exact_top_logprobs": np.round(e_lp, 7).tolist(), "exact_logsumexp": np.round(e_lse, 6).tolist(),
                                 "llamacpp_top_ids": l_ids.tolist(), "llamacpp_top_logprobs": np.round(l_lp, 7).tolist()})
        print(f"{len(ids)} tokens: {t[:60]!r}", file=sys.stderr)
    json.dump(out, open(os.path.join(HERE, "reference.json"), "w"), separators=(",", ":"))


if __name__ == "__main__":
    main()
