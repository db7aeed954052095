#!/usr/bin/env python3
"""swift-lm, llama.cpp and the exact computation on a GGUF file (Gemma 3): token ids, logits, perplexity.

  tokens   token ids of every non-empty line of --text (BOS as the file says), swift-lm
           (`lm tokenize --lines`) against llama.cpp (llama-cpp-python, add_special, parse_special off).
  logits   over the first lines of --text until --positions positions are covered: swift-lm's logits
           (`lm forward`, the whole line as one batch and token by token with --batch 1), llama.cpp's
           (one batch per line, as llamacpp_file.py logits does, and one token at a time) and the exact
           computation of the file's weights (../shared/bench/gguf_ref.py, plain float64 mode:
           dequantized weights, float64 activations). Reports, for each pair, mean KL(P ‖ Q) over the
           full vocabulary, top-1 agreement, max |Δlogit|.
  ppl      `lm eval --corpus` against llamacpp_file.py ppl on the same windows (--ctx, --max-chunks).

Prints one JSON line per mode (progress on stderr); `all` runs the three.

  python Benchmarks/gemma/compare.py all --model ~/.cache/swift-lm/gemma-3-270m-q4_k_m.gguf \\
      --text ../shared/data/wikitext-2/valid.txt --lm .build/release/lm
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("LM_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "bench"))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def lines_of(path):
    return [t for t in open(path, encoding="utf-8").read().split("\n") if t.strip()]


def lm_tokens(lm, model, lines):
    r = subprocess.run([lm, "tokenize", "--tokenizer", model, "--add-special", "--lines", "--ids"],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    out = r.stdout.split("\n")[:len(lines)]
    return [[int(x) for x in o.split()] for o in out]


def llama_tokens(model, lines):
    import llama_cpp as L
    from llamacpp_file import open_model, tokenize
    m, _ = open_model(L, model, 512, 2)
    return [tokenize(L, m, t, True) for t in lines]


def mode_tokens(a):
    lines = lines_of(a.text)
    ours = lm_tokens(a.lm, a.model, lines)
    theirs = llama_tokens(a.model, lines)
    same = sum(x == y for x, y in zip(ours, theirs))
    diff = [i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y]
    res = {"mode": "tokens", "lines": len(lines), "identical": same, "tokens": sum(map(len, theirs)),
           "first_differences": [{"line": i, "text": lines[i][:80], "lm": ours[i][:20], "llama_cpp": theirs[i][:20]}
                                 for i in diff[:5]]}
    print(json.dumps(res), flush=True)
    return res


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def compare(p_logits, q_logits):
    """Per-position KL(P ‖ Q), top-1 agreement and max |Δ| of two (T, V) logit arrays."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    kl = (np.exp(lp) * (lp - lq)).sum(-1)
    top = (p_logits.argmax(-1) == q_logits.argmax(-1))
    return kl, top, np.abs(p_logits.astype(np.float64) - q_logits.astype(np.float64)).max(-1)


def lm_logits(lm, model, ids, batch, tmp):
    out = os.path.join(tmp, "logits.safetensors")
    cmd = [lm, "forward", "--model", model, "--ids", ",".join(map(str, ids)), "--out", out]
    if batch:
        cmd += ["--batch", str(batch)]
    subprocess.run(cmd, check=True, capture_output=True)
    from safetensors.numpy import load_file
    return load_file(out)["logits"]


def llama_logits(L, ctx, ids, one_by_one):
    from llamacpp_file import decode_all
    L.llama_memory_clear(L.llama_get_memory(ctx), False)
    if not one_by_one:
        return np.array(decode_all(L, ctx, ids))
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(L.llama_get_model(ctx)))
    rows = []
    for i, t in enumerate(ids):
        batch = L.llama_batch_init(1, 0, 1)
        batch.token[0] = t; batch.pos[0] = i; batch.n_seq_id[0] = 1; batch.seq_id[0][0] = 0; batch.logits[0] = 1
        batch.n_tokens = 1
        if L.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")
        rows.append(np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, 0), shape=(n_vocab,)).astype(np.float64).copy())
        L.llama_batch_free(batch)
    return np.array(rows)


def mode_logits(a):
    import gguf_ref
    import llama_cpp as L
    from llamacpp_file import open_model, tokenize
    model, ctx = open_model(L, a.model, 2048, 2)
    lines = lines_of(a.text)
    seqs, total = [], 0
    for t in lines:
        ids = tokenize(L, model, t, True)
        if len(ids) < 8 or len(ids) > 512:
            continue
        seqs.append(ids)
        total += len(ids)
        if total >= a.positions:
            break
    log(f"{len(seqs)} lines, {total} positions; loading the float64 reference…")
    ref = gguf_ref.Model(a.model, False, np.float64)
    pairs = {}

    def add(name, p, q):
        kl, top, dmax = compare(p, q)
        s = pairs.setdefault(name, {"kl": [], "top1": [], "max_abs": []})
        s["kl"] += kl.tolist(); s["top1"] += top.tolist(); s["max_abs"] += dmax.tolist()

    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for k, ids in enumerate(seqs):
            exact = ref.forward(ids)
            lm_b = lm_logits(a.lm, a.model, ids, None, tmp)
            lm_t = lm_logits(a.lm, a.model, ids, 1, tmp)
            ll_b = llama_logits(L, ctx, ids, False)
            ll_t = llama_logits(L, ctx, ids, True)
            add("exact || swift-lm batch", exact, lm_b)
            add("exact || swift-lm token-by-token", exact, lm_t)
            add("swift-lm batch || swift-lm token-by-token", lm_b, lm_t)
            add("exact || llama.cpp batch", exact, ll_b)
            add("exact || llama.cpp token-by-token", exact, ll_t)
            add("llama.cpp batch || llama.cpp token-by-token", ll_b, ll_t)
            add("llama.cpp batch || swift-lm batch", ll_b, lm_b)
            add("llama.cpp token-by-token || swift-lm token-by-token", ll_t, lm_t)
            log(f"line {k + 1}/{len(seqs)}: {len(ids)} tokens ({time.time() - t0:.0f} s)")
    res = {"mode": "logits", "file": os.path.basename(a.model), "lines": len(seqs), "positions": total,
           "pairs": {name: {"mean_kl": float(np.mean(s["kl"])), "max_kl": float(np.max(s["kl"])),
                            "top1_agreement": float(np.mean(s["top1"])), "max_abs": float(np.max(s["max_abs"])),
                            "mean_max_abs": float(np.mean(s["max_abs"]))} for name, s in pairs.items()},
           "kl": "KL(P || Q) per position over the full vocabulary, P named first; natural log"}
    print(json.dumps(res), flush=True)
    return res


def mode_ppl(a):
    r = subprocess.run([a.lm, "eval", "--model", a.model, "--corpus", a.text, "--context", str(a.ctx),
                        "--max-chunks", str(a.max_chunks), "--json"], capture_output=True, text=True, check=True)
    ours = json.loads(r.stdout.strip().split("\n")[-1])
    r = subprocess.run([sys.executable, os.path.join(SHARED, "bench", "llamacpp_file.py"), "ppl", "--model", a.model,
                        "--text", a.text, "--ctx", str(a.ctx), "--max-chunks", str(a.max_chunks)],
                       capture_output=True, text=True, check=True)
    theirs = json.loads(r.stdout.strip().split("\n")[-1])
    res = {"mode": "ppl", "ctx": a.ctx, "windows": ours["windows"], "scored_tokens": ours["scored_tokens"],
           "llama_cpp_scored_tokens": theirs["tokens_scored"], "swift_lm": ours["perplexity"],
           "llama_cpp": theirs["ppl"], "difference_percent": (ours["perplexity"] / theirs["ppl"] - 1) * 100}
    print(json.dumps(res), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["tokens", "logits", "ppl", "all"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", default=os.path.join(SHARED, "data", "wikitext-2", "valid.txt"))
    ap.add_argument("--lm", default=os.path.join(HERE, "..", "..", ".build", "release", "lm"))
    ap.add_argument("--positions", type=int, default=520)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--max-chunks", type=int, default=40)
    a = ap.parse_args()
    for m in (["tokens", "logits", "ppl"] if a.mode == "all" else [a.mode]):
        {"tokens": mode_tokens, "logits": mode_logits, "ppl": mode_ppl}[m](a)


if __name__ == "__main__":
    main()
