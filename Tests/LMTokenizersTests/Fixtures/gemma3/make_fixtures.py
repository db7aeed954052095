#!/usr/bin/env python3
"""Makes the Gemma 3 tokenizer fixtures of GemmaTokenizerTests.swift from llama.cpp itself
(llama-cpp-python 0.3.36, the vocabulary loaded alone: vocab_only, no weights).

Usage (from the package root; the model is google/gemma-3-270m Q4_K_M, `make gemma` fetches it):

    python Tests/LMTokenizersTests/Fixtures/gemma3/make_fixtures.py \
        --model ~/.cache/swift-lm/gemma-3-270m-q4_k_m.gguf \
        --wikitext ../shared/data/wikitext-2/valid.txt \
        --llama-spm ../shared/data/llama-cpp-vocab/ggml-vocab-llama-spm.gguf

Writes, beside this script:

  valid-lines.txt    WikiText-2 valid.txt, each non-empty line (text.split("\\n"), lines with
                     only whitespace left out, as ../shared/bench/llamacpp_file.py does),
                     tokenized with add_special=True, parse_special=False: one line per text line,
                     "<number of ids> <FNV-1a 64 of the ids>" (ids as little-endian uint32, hash
                     in 16 hex digits). '#' lines are comments.
  valid-whole.json   the whole file as one string (what llama.cpp's perplexity tool tokenizes,
                     add_special=True, parse_special=False): count, FNV-1a 64 of all ids, the hash
                     of each chunk of 8192 ids, the first and last 256 ids; and the count and hash
                     with parse_special=True (the file's "<unk>" texts become id 3).
  hard-strings.json  hard strings, each tokenized with parse_special False and True, add_special
                     True and False (full ids); 120 random mixes of special-token text,
                     user-defined text, whitespace and other characters (add_special False,
                     parse_special False and True); and detokenize cases: llama_detokenize of id lists
                     with (remove_special, unparse_special) = (True, False) and (False, True), the
                     raw bytes in hex.
  pieces.json        llama_token_to_piece of every id with special False and True: FNV-1a 64 of
                     the pieces, each as a little-endian uint32 length then its bytes; the ids
                     whose attribute includes CONTROL or UNKNOWN (as ranges); a few pieces in full.
  llama-spm-detokenize.json  on llama.cpp's ggml-vocab-llama-spm.gguf (add_space_prefix true):
                     llama_detokenize cases (the leading-space rules) and a few texts tokenized with
                     parse_special False and True (the space put before each text stretch).
"""
import argparse
import ctypes
import hashlib
import json
import os
import random

import llama_cpp as L

HERE = os.path.dirname(os.path.abspath(__file__))
FNV_OFFSET, FNV_PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def fnv(data: bytes, h=FNV_OFFSET):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def ids_bytes(ids):
    return b"".join(int(i).to_bytes(4, "little") for i in ids)


def dump(obj, path):
    """JSON with one list element per line (small, and diffs stay readable)."""
    def enc(v):
        if isinstance(v, list) and v and isinstance(v[0], (dict, list)):
            return "[\n" + ",\n".join(json.dumps(x, ensure_ascii=True, separators=(",", ":")) for x in v) + "\n]"
        return json.dumps(v, ensure_ascii=True, separators=(",", ":"))
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {enc(v)}" for k, v in obj.items()) + "\n}\n")


def hx(h):
    return f"{h:016x}"


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def _nolog(level, text, user):
    pass


def load_vocab(path):
    L.llama_log_set(_nolog, None)
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.vocab_only = True
    model = L.llama_model_load_from_file(path.encode(), mp)
    if not model:
        raise SystemExit(f"failed to load {path}")
    return model, L.llama_model_get_vocab(model)


def tokenize(vocab, text, add_special, parse_special):
    b = text.encode("utf-8")
    cap = len(b) + 16
    buf = (L.llama_token * cap)()
    n = L.llama_tokenize(vocab, b, len(b), buf, cap, add_special, parse_special)
    if n < 0:
        cap = -n
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(vocab, b, len(b), buf, cap, add_special, parse_special)
    return [buf[i] for i in range(n)]


def detokenize(vocab, ids, remove_special, unparse_special):
    arr = (L.llama_token * max(1, len(ids)))(*ids)
    cap = 64 + 64 * len(ids)
    buf = ctypes.create_string_buffer(cap)
    n = L.llama_detokenize(vocab, arr, len(ids), buf, cap, remove_special, unparse_special)
    if n < 0:
        cap = -n
        buf = ctypes.create_string_buffer(cap)
        n = L.llama_detokenize(vocab, arr, len(ids), buf, cap, remove_special, unparse_special)
    return buf.raw[:n]


def piece(vocab, token, special):
    buf = ctypes.create_string_buffer(256)
    n = L.llama_token_to_piece(vocab, token, buf, 256, 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = L.llama_token_to_piece(vocab, token, buf, -n, 0, special)
    return buf.raw[:n]


HARD = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", " \n", "\n ", " \n \n ", "\r\n", "\r",
    "Hello", " Hello", "Hello ", " Hello ", "  Hello  world  ", "a b", "a  b", "a   b", "a \t b",
    " " * 29, " " * 30, " " * 31, " " * 35, " " * 60, " " * 61, " " * 100, "x" + " " * 45 + "y",
    "\t" * 31, "\t" * 40, "\n" * 31, "\n" * 32, "\n" * 70, "\t\tindented\n\t\t\tmore",
    "line1\nline2", "line1\n\n\nline2", "para\n\n\n\n\nnext", "trailing \n", " leading",
    "The capital of France is", "a</s>b", "<s>", "</s>", "<s>x</s>", "<b>bold</b> <i>it</i>",
    "<table><tr><td>x</td></tr></table>", "<h1>Title</h1>\n<p>text</p>", "[multimodal]",
    "<start_of_image><end_of_image>", "<start_of_turn>user\nHi<end_of_turn>\n",
    "<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nWho are you?<end_of_turn>\n<start_of_turn>model\n",
    "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<bos><bos>", "<<bos>>", "x<eos>y", "<unused0>",
    "<unused98>", "<unused99>", "<unused6241>", "<unused6242>", "<unused>", "<start_of_turn",
    "start_of_turn>", "</", "</s", "<s", "</s>>", "<</s>", " <b> ", "a<b>b", "<b><b><b>",
    "species of <unk> lobster", " = = Robert Boulter = = \n", " @-@ 1 @,@ 000 @.@ 5 ",
    "你好，世界！日本語のテキスト。한국어 텍스트.", "Ελληνικά Русский العربية עברית हिन्दी ไทย",
    "👍 👍🏽 🇫🇷 👨‍👩‍👧 🤖🦙", "e\u0301 Ångström ﬁ ∑∫√ ½ ™", "\u200b\u200d\ufeffBOM",
    "\u2581", "\u2581\u2581x", "a\u2581b", " \u2581 ", "\U00013000\U0001F9EC\ue000\U0010FFFD",
    "\U0002A6DF\U0002B740 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "a\x00b", "\x01\x02\x7f", "~!@#$%^&*()_+`-={}|[]\\:\";'<>?,./",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "1234567890 3.14159 1,000,000 2024-01-01", "def f(x):\n    return x ** 2\n\nprint(f(3))\n",
    "https://example.com/path?q=1&r=2#frag", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ab" * 40, "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞß", "I'm don't we'll they're", "  \n\t \n  ",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/swift-lm/gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--wikitext", required=True)
    ap.add_argument("--llama-spm", required=True)
    args = ap.parse_args()

    model, vocab = load_vocab(args.model)
    sha = hashlib.sha256(open(args.model, "rb").read()).hexdigest()
    source = {"model": os.path.basename(args.model), "sha256": sha, "llama_cpp_python": L.__version__}

    # WikiText-2 lines
    text = open(args.wikitext, encoding="utf-8").read()
    lines = [t for t in text.split("\n") if t.strip()]
    with open(os.path.join(HERE, "valid-lines.txt"), "w") as f:
        f.write(f"# {os.path.basename(args.wikitext)}: {len(lines)} non-empty lines, llama.cpp ids "
                f"(add_special=True, parse_special=False) of each: count, FNV-1a 64 of the ids (LE uint32)\n")
        f.write(f"# {json.dumps(source)}\n")
        total = 0
        for t in lines:
            ids = tokenize(vocab, t, True, False)
            total += len(ids)
            f.write(f"{len(ids)} {hx(fnv(ids_bytes(ids)))}\n")
    print(f"{len(lines)} lines, {total} ids")

    # the whole file
    ids = tokenize(vocab, text, True, False)
    chunk = 8192
    special = tokenize(vocab, text, True, True)
    whole = dict(source, file=os.path.basename(args.wikitext), count=len(ids), fnv=hx(fnv(ids_bytes(ids))),
                 chunk=chunk, chunks=[hx(fnv(ids_bytes(ids[i:i + chunk]))) for i in range(0, len(ids), chunk)],
                 first=ids[:256], last=ids[-256:],
                 parse_special_count=len(special), parse_special_fnv=hx(fnv(ids_bytes(special))))
    dump(whole, os.path.join(HERE, "valid-whole.json"))
    print(f"whole file: {len(ids)} ids")

    # hard strings
    cases = []
    for t in HARD:
        for parse in (False, True):
            cases.append({"text": t, "parse_special": parse,
                          "ids": tokenize(vocab, t, True, parse),
                          "ids_no_bos": tokenize(vocab, t, False, parse)})
    # random mixes of special-token text, user-defined text, whitespace and other characters
    pieces = ["<b>", "</b>", "</s>", "<s>", " ", "  ", "\n", "\t", "<start_of_turn>", "<end_of_turn>", "<unused5>",
              "<bos>", "<eos>", "a", "\u00e9", "\U0001F916", "<", ">", "/", "s", "b", "the", " the", "\u2581", "\r",
              "[multimodal]", "<unk>", "\u65e5\u672c", "\u0301", "x", "\x00", "<table>", "<td>", "</td>", "<h1>",
              "ing", ".", ",", "0", "12"]
    rnd = random.Random(3)
    random_cases = []
    for _ in range(120):
        t = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 30)))
        random_cases.append({"text": t, "ids": tokenize(vocab, t, False, False),
                             "ids_special": tokenize(vocab, t, False, True)})
    rnd = random.Random(7)
    n = L.llama_vocab_n_tokens(vocab)
    id_lists = [c["ids"] for c in cases if c["parse_special"]]
    id_lists += [[2, 105, 2364, 107, 10979, 106, 107, 1], [1, 2, 3], [2], [], [212, 212], [238 + 0xE4, 238 + 0xBD],
                 [238 + 0xE4, 238 + 0xBD, 238 + 0xA0, 818], [5, 6, 256001, 262143, 255999, 108, 138]]
    id_lists += [[rnd.randrange(n) for _ in range(rnd.randrange(1, 24))] for _ in range(40)]
    id_lists += [[rnd.randrange(238, 494) for _ in range(rnd.randrange(1, 12))] for _ in range(20)]
    decode = []
    for ids in id_lists:
        decode.append({"ids": ids,
                       "skip": detokenize(vocab, ids, True, False).hex(),
                       "keep": detokenize(vocab, ids, False, True).hex()})
    dump(dict(source, cases=cases, random=random_cases, decode=decode), os.path.join(HERE, "hard-strings.json"))
    print(f"{len(cases)} hard-string cases, {len(decode)} decode cases")

    # every piece
    hs = {False: FNV_OFFSET, True: FNV_OFFSET}
    special_ranges = []
    for i in range(n):
        for s in (False, True):
            p = piece(vocab, i, s)
            hs[s] = fnv(len(p).to_bytes(4, "little") + p, hs[s])
        if L.llama_vocab_get_attr(vocab, i) & (1 | 8):   # UNKNOWN | CONTROL
            if special_ranges and special_ranges[-1][1] == i:
                special_ranges[-1][1] = i + 1
            else:
                special_ranges.append([i, i + 1])
    sample = [0, 1, 2, 3, 105, 106, 107, 108, 138, 167, 200, 212, 236743, 238, 238 + 10, 238 + 0x41, 255968,
              255999, 256001, 818, 5279]
    dump(dict(source, n_tokens=n, piece_fnv=hx(hs[False]), piece_special_fnv=hx(hs[True]),
              special_ranges=special_ranges,
              sample=[{"id": i, "piece": piece(vocab, i, False).hex(), "piece_special": piece(vocab, i, True).hex()}
                      for i in sample]),
         os.path.join(HERE, "pieces.json"))
    print(f"pieces of {n} ids; {sum(b - a for a, b in special_ranges)} special")

    # llama-spm: the leading-space rules of llama_detokenize (add_space_prefix = true)
    _, sv = load_vocab(args.llama_spm)
    texts = ["Hello world", " Hello world", "  two spaces", "<s>Hello</s>", "\n\nx", "", " ", "a<unk>b <s> <s>c",
             "<s><s>", "x </s> y"]
    spm = []
    for t in texts:
        for add in (False, True):
            ids = tokenize(sv, t, add, True)
            spm.append({"ids": ids, "skip": detokenize(sv, ids, True, False).hex(),
                        "keep": detokenize(sv, ids, False, True).hex()})
    for ids in ([1, 15043, 3186, 2], [15043, 1, 3186], [29871, 15043], [0, 15043], [1, 0], [2, 1, 29871],
                [13, 15043], [29871], [259, 15043]):
        spm.append({"ids": ids, "skip": detokenize(sv, ids, True, False).hex(),
                    "keep": detokenize(sv, ids, False, True).hex()})
    spm_cases = []
    for t in texts:
        for parse in (False, True):
            spm_cases.append({"text": t, "parse_special": parse, "ids_no_bos": tokenize(sv, t, False, parse)})
    dump({"vocab": os.path.basename(args.llama_spm), "llama_cpp_python": L.__version__,
          "decode": spm, "cases": spm_cases}, os.path.join(HERE, "llama-spm-detokenize.json"))
    print(f"{len(spm)} llama-spm decode cases")


if __name__ == "__main__":
    main()
