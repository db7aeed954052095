#!/usr/bin/env python3
"""Tokenizer encode throughput: swift-lm against its peers, side by side, one thread.

Text: shared/data/wikitext-2/train.txt (10.8 MB), split into lines with str.splitlines()
(36,718 lines, newlines removed, empty lines kept) — the same text and split as
shared/bench/tokenizers_bench.py. MB/s = UTF-8 bytes of the whole file / wall time of one pass
encoding every line separately (a warm-up pass first, then --reps timed passes; min/median/max).

| tokenizer | swift-lm | peer |
| WordPiece (MiniLM vocab, lowercase, [CLS]/[SEP] per line) | lm tokenize --bench-file | HF tokenizers BertWordPieceTokenizer(vocab.txt, lowercase=True).encode(line) |
| byte-level BPE (GPT-2 vocab.json + merges.txt) | lm tokenize --bench-file | HF tokenizers ByteLevelBPETokenizer(vocab, merges).encode(line) |
| SentencePiece BPE / unigram, vocab 8000 trained on train.txt | lm tokenize --bench-file (Swift encoder; and with --sentencepiece-engine library, libsentencepiece through the shim) | python sentencepiece 0.2.3 encode(line); and C++ calling the system libsentencepiece directly |

Every tokenizer must produce exactly the same ids as its peer on every line (token count and a
checksum of all ids), or the script fails.
Usage (from the package root, after `swift build -c release`):
    . <venv with the peers>/bin/activate     # shared/bench/requirements.txt
    python Benchmarks/tokenizers/run.py [--lm .build/release/lm] [--reps 3]
Prints one JSON line on stdout and a table on stderr.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("LM_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def stats(rates):
    r = sorted(rates)
    return {"min": round(r[0], 2), "median": round(r[len(r) // 2], 2), "max": round(r[-1], 2)}


def timed(fn, reps, mb):
    fn()
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        rates.append(mb / (time.perf_counter() - t0))
    return stats(rates)


def checksum(id_lists):
    """The same checksum `lm tokenize --bench-file` prints: every line's ids, in order."""
    m = (1 << 61) - 1
    h = 0
    for ids in id_lists:
        for i in ids:
            h = (h * 1000003 + i + 1) % m
        h = (h * 1000003) % m
    return str(h)


def ours(lm, tokenizer, text, reps, extra=()):
    out = subprocess.run([lm, "tokenize", "--tokenizer", tokenizer, "--bench-file", text, "--bench-reps", str(reps), *extra],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm", default=None, help="the lm binary (default: .build/release/lm, else .build-tok/release/lm)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--text", default=os.path.join(SHARED, "data", "wikitext-2", "train.txt"))
    ap.add_argument("--only", default="wordpiece,bpe,spm", help="comma-separated subset")
    args = ap.parse_args()
    lm = args.lm or next((p for p in (os.path.join(ROOT, ".build", "release", "lm"),
                                       os.path.join(ROOT, ".build-tok", "release", "lm")) if os.path.exists(p)), None)
    if not lm or not os.path.exists(lm):
        raise SystemExit("no release lm binary: run `swift build -c release` first or pass --lm")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"
    import sentencepiece as spm
    import tokenizers

    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    lines = text.splitlines()
    nbytes = len(text.encode("utf-8"))
    mb = nbytes / 1e6
    only = set(args.only.split(","))
    result = {"bench": "swift-lm tokenizers", "threads": 1, "reps": args.reps, "cpus": os.cpu_count(),
              "load_before": loadavg(),
              "text": {"file": os.path.relpath(args.text, os.path.dirname(SHARED)), "bytes": nbytes, "lines": len(lines)},
              "peers": {"tokenizers": tokenizers.__version__, "sentencepiece": spm.__version__}}
    rows = []

    def compare(name, mine, peer, peer_ids, peer_name):
        peer_tokens = sum(len(x) for x in peer_ids)
        if mine["tokens"] != peer_tokens or mine["ids_checksum"] != checksum(peer_ids):
            raise SystemExit(f"{name}: swift-lm made {mine['tokens']} tokens, {peer_name} {peer_tokens}, or the ids differ: not the same tokenization")
        ratio = round(mine["encode_MBps"]["median"] / peer["median"], 2)
        result[name] = {"swift_lm_MBps": mine["encode_MBps"], "peer": peer_name, "peer_MBps": peer,
                        "ratio_median": ratio, "tokens": peer_tokens, "ids_identical": True}
        rows.append((name, mine["encode_MBps"]["median"], peer_name, peer["median"], ratio))
        log(f"{name}: swift-lm {mine['encode_MBps']} vs {peer_name} {peer} -> x{ratio}")

    if "wordpiece" in only:
        from tokenizers import BertWordPieceTokenizer
        vocab = os.path.join(SHARED, "models", "minilm-l6-v2", "vocab.txt")
        tok = BertWordPieceTokenizer(vocab, lowercase=True)
        peer = timed(lambda: [tok.encode(l).ids for l in lines], args.reps, mb)
        mine = ours(lm, vocab, args.text, args.reps)
        compare("wordpiece", mine, peer, [tok.encode(l).ids for l in lines], "HF tokenizers BertWordPieceTokenizer")

    if "bpe" in only:
        from tokenizers import ByteLevelBPETokenizer
        folder = os.path.join(SHARED, "data", "gpt2-tokenizer")
        tok = ByteLevelBPETokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
        peer = timed(lambda: [tok.encode(l).ids for l in lines], args.reps, mb)
        mine = ours(lm, folder, args.text, args.reps)
        compare("byte_level_bpe", mine, peer, [tok.encode(l).ids for l in lines], "HF tokenizers ByteLevelBPETokenizer")

    if "spm" in only:
        work = tempfile.mkdtemp(prefix="lm-tok-bench-")
        cxx = shutil.which("c++") or shutil.which("clang++") or "/opt/swift/usr/bin/clang++"
        direct = os.path.join(work, "direct_sentencepiece")
        built = subprocess.run([cxx, "-O2", "-std=c++17", os.path.join(os.path.dirname(__file__), "direct_sentencepiece.cpp"),
                                "-o", direct, "-lsentencepiece"], capture_output=True, text=True)
        if built.returncode != 0:
            log("could not build the direct C++ baseline:", built.stderr[-500:])
            direct = None
        try:
            for mtype in ("bpe", "unigram"):
                prefix = os.path.join(work, f"wt2-{mtype}")
                spm.SentencePieceTrainer.train(input=args.text, model_prefix=prefix, vocab_size=8000, model_type=mtype,
                                               num_threads=2, minloglevel=1)
                model = prefix + ".model"
                sp = spm.SentencePieceProcessor(model_file=model)
                peer = timed(lambda: [sp.encode(l) for l in lines], args.reps, mb)
                peer_ids = sp.encode(lines)
                peer_tokens = sum(len(x) for x in peer_ids)
                mine = ours(lm, model, args.text, args.reps)
                compare(f"spm_{mtype}", mine, peer, peer_ids, "python sentencepiece")
                lib = ours(lm, model, args.text, args.reps, extra=("--sentencepiece-engine", "library"))
                if lib["ids_checksum"] != mine["ids_checksum"]:
                    raise SystemExit(f"spm_{mtype}: the Swift encoder and libsentencepiece disagree")
                result[f"spm_{mtype}"]["swift_lm_library_engine_MBps"] = lib["encode_MBps"]
                if direct:
                    d = json.loads(subprocess.run([direct, model, args.text, str(args.reps)], check=True,
                                                  capture_output=True, text=True).stdout)
                    result[f"spm_{mtype}"]["direct_libsentencepiece_MBps"] = d["encode_MBps"]
                    result[f"spm_{mtype}"]["ratio_vs_direct_median"] = round(mine["encode_MBps"]["median"] / d["encode_MBps"]["median"], 2)
                    rows.append((f"spm_{mtype}", mine["encode_MBps"]["median"], "C++ libsentencepiece (system) direct",
                                 d["encode_MBps"]["median"], result[f"spm_{mtype}"]["ratio_vs_direct_median"]))
                    ratio = round(lib["encode_MBps"]["median"] / d["encode_MBps"]["median"], 2)
                    result[f"spm_{mtype}"]["library_engine_vs_direct_median"] = ratio
                    rows.append((f"spm_{mtype} (library engine)", lib["encode_MBps"]["median"],
                                 "C++ libsentencepiece (system) direct", d["encode_MBps"]["median"], ratio))
                    if d["tokens"] != peer_tokens:
                        log(f"note: direct C++ libsentencepiece made {d['tokens']} tokens vs {peer_tokens}")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    result["load_after"] = loadavg()
    log("| tokenizer | swift-lm MB/s | peer | peer MB/s | ratio |")
    log("| --- | ---: | --- | ---: | ---: |")
    for name, m, peer, p, r in rows:
        log(f"| {name} | {m} | {peer} | {p} | {r} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
