#!/usr/bin/env python3
"""Gemma 3 (text) tiny fixtures for swift-lm: one random Gemma3ForCausalLM, as a Hugging Face folder and as
an F32 GGUF file, with reference logits from transformers, llama.cpp and a float64 NumPy model.

What it writes (paths relative to this file's folder, Tests/LMModelsTests/Fixtures/gemma3-tiny/):
  hf/config.json, hf/generation_config.json, hf/model.safetensors
                          the random model (float32), saved by transformers' save_pretrained
  tiny-f32.gguf           the same weights as llama.cpp's converter (convert_hf_to_gguf.py, Gemma3Model,
                          --outtype f32) writes them: arch "gemma3", every *norm.weight + 1, plus a
                          512-token SPM ("llama") vocabulary so that llama.cpp can load it
  reference.json          inputs, greedy ids, argmaxes, tolerances measured, conventions checked, versions
  reference.safetensors   the logits (float32): transformers, llama.cpp batch and one-token-at-a-time
  quant/tiny-q8_0.gguf, quant/tiny-q4_k_m.gguf, quant/quant.json, quant/logits.safetensors
                          the F32 GGUF quantized by llama.cpp (llama_model_quantize) and its logits
See README.md beside this file for the shapes and what was found.

How to run (the venv of this project: torch 2.15.0, transformers 5.23.0, safetensors 0.8.0, gguf 0.19.0,
numpy 2.4.6, llama-cpp-python 0.3.36; Python 3.11):
  python make_gemma3_tiny.py            # rewrite everything (~10 s)
  python make_gemma3_tiny.py --verify   # regenerate into a temp folder, compare to disk
  ... --converter DIR   also run llama.cpp's own convert_hf_to_gguf.py from a llama.cpp source tree DIR
                        (e.g. the vendor/llama.cpp of the llama-cpp-python 0.3.36 sdist) on hf/ and
                        compare its output with tiny-f32.gguf key by key and tensor by tensor
  ... --no-quant        skip quant/

Determinism: fixed seeds everywhere, torch single-threaded, llama.cpp with 1 thread. The optional
shared/bench/gguf_ref.py cross-check is used if ../shared/bench exists (it is not needed).
No network access is needed: the model is random, nothing comes from a hub.
"""
import argparse
import ctypes
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import gguf  # noqa: E402
import transformers  # noqa: E402
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GenerationConfig  # noqa: E402

transformers.logging.set_verbosity_error()

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.environ.get("LM_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..", "shared")) + "/bench"  # gguf_ref.py (optional cross-check)
ATTN = "eager"

# --------------------------------------------------------------------------------------------
# Recipe
# --------------------------------------------------------------------------------------------

CONFIG_KW = dict(
    vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
    num_attention_heads=4, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32,
    sliding_window=8, max_position_embeddings=128, rms_norm_eps=1e-6,
    hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
    final_logit_softcapping=None, attn_logit_softcapping=None,
    rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                     "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
    bos_token_id=2, eos_token_id=1, pad_token_id=0,
)
MODEL_SEED = 0
MATRIX_STD = 0.2   # embeddings and projections: 0.2 * N(0, 1)
NORM_STD = 0.2     # RMSNorm weights w (HF computes x_hat * (1 + w)): 0.2 * N(0, 1), i.e. around 0
SEQ_SPECS = [("bos_only", 200, 1), ("random_len13", 201, 13), ("random_len24", 202, 24)]
N_GREEDY = 8
N_CTX = 128
LLAMA_THREADS = 1

# GGUF names as llama.cpp's tensor map gives them (gguf-py constants, MODEL_ARCH.GEMMA3)
HF_TO_GGUF = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "post_feedforward_layernorm": "post_ffw_norm",
}

# --------------------------------------------------------------------------------------------
# Small helpers (same JSON style as shared/fixtures/make_fixtures.py)
# --------------------------------------------------------------------------------------------


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def _pkg_version(name):
    from importlib.metadata import version

    return version(name)


def versions():
    v = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
         "safetensors": _pkg_version("safetensors"), "gguf": _pkg_version("gguf"), "numpy": np.__version__}
    try:
        v["llama_cpp_python"] = _pkg_version("llama_cpp_python")
    except Exception:  # pragma: no cover
        pass
    return v


def _fmt(o, ind=0):
    """JSON with dicts indented and lists of scalars on one line."""
    pad = " " * (ind + 1)
    if isinstance(o, dict):
        if not o:
            return "{}"
        items = [f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {_fmt(v, ind + 1)}" for k, v in o.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * ind + "}"
    if isinstance(o, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in o):
            return json.dumps(list(o), ensure_ascii=False)
        return "[\n" + ",\n".join(pad + _fmt(x, ind + 1) for x in o) + "\n" + " " * ind + "]"
    return json.dumps(o, ensure_ascii=False)


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(_fmt(obj) + "\n")
    os.chmod(path, 0o644)


def write_tensors(path, tensors):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)).contiguous().clone() for k, v in tensors.items()}
    save_file(out, path, metadata={"format": "pt"})
    os.chmod(path, 0o644)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def f32(x):
    return float(np.float32(x))


def maxabs(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return f32(np.abs(a - b).max()) if a.size else 0.0


def seeded_ids(seed, length, vocab):
    """BOS (2) followed by length-1 ids drawn by torch.randint(0, vocab) from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return [2] + torch.randint(0, vocab, (length - 1,), generator=g).tolist()


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def randomize_(model, seed):
    """Every parameter from one seeded generator in named_parameters() order (the tied lm_head is the
    embedding and appears once): 1-D tensors (the RMSNorm weights w, used as 1 + w) get NORM_STD * N(0,1),
    all others MATRIX_STD * N(0,1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            p.copy_((NORM_STD if p.dim() == 1 else MATRIX_STD) * noise)


def build_hf(hf_dir):
    torch.manual_seed(MODEL_SEED)
    config = Gemma3TextConfig(**CONFIG_KW)
    model = Gemma3ForCausalLM(config)
    randomize_(model, MODEL_SEED)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "lm_head not tied"
    if os.path.isdir(hf_dir):
        shutil.rmtree(hf_dir)
    model.save_pretrained(hf_dir)
    for n in os.listdir(hf_dir):
        os.chmod(os.path.join(hf_dir, n), 0o644)


def load_hf(hf_dir, dtype=torch.float32):
    return Gemma3ForCausalLM.from_pretrained(hf_dir, dtype=dtype, attn_implementation=ATTN).eval()


# --------------------------------------------------------------------------------------------
# Vocabulary (SentencePiece-style, 512 tokens) for the GGUF file
# --------------------------------------------------------------------------------------------

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
WORDS = ("hello world the capital of france is man said two spaces and tab user to in that it was for on with "
         "as at by this had not are but from or have an they which one you were her all she there would their we "
         "him been has when who will more no if out so what up its about into than them can only other new some "
         "could time these may then do first any my now such like our over").split()
CHARS = ("▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"-()")
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE = 1, 2, 3, 4, 5, 6


def build_vocab(n_vocab):
    """ids 0..6 control tokens (Gemma's first ids; score -1000 like the converter gives added special
    tokens), 7..262 the byte tokens <0x00>..<0xFF> (type 6, score 0), then normal pieces: single
    characters, then for each word the prefixes of '▁word' (so SPM can reach it by pair merges), with
    score -(rank): pieces added earlier merge first. Exactly n_vocab tokens."""
    tokens = list(SPECIALS)
    scores = [-1000.0] * len(SPECIALS)
    types = [TT_CONTROL] * len(SPECIALS)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(TT_BYTE)
    normal = []
    seen = set()

    def add(p):
        if p not in seen and len(tokens) + len(normal) < n_vocab:
            seen.add(p)
            normal.append(p)

    for c in CHARS:
        add(c)
    for w in WORDS:
        for piece in ("▁" + w, w.capitalize() if w in ("the", "hello", "france") else None):
            if piece is None:
                continue
            for k in range(2, len(piece) + 1):
                add(piece[:k])
    i = 0
    while len(tokens) + len(normal) < n_vocab:  # filler pieces (not reached with the lists above)
        add(f"▁w{i}")
        i += 1
    for r, p in enumerate(normal):
        tokens.append(p)
        scores.append(-float(r))
        types.append(TT_NORMAL)
    assert len(tokens) == n_vocab and len(set(tokens)) == n_vocab
    return tokens, scores, types


# --------------------------------------------------------------------------------------------
# GGUF writing, as convert_hf_to_gguf.py (Gemma3Model, --outtype f32) does it
# --------------------------------------------------------------------------------------------


def hf_state(hf_dir):
    """The checkpoint tensors in file order (the order the converter reads them in)."""
    out = []
    with safe_open(os.path.join(hf_dir, "model.safetensors"), "pt") as f:
        for k in f.keys():
            out.append((k, f.get_tensor(k)))
    return out


def gguf_name(hf_name):
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    parts = hf_name.split(".")
    assert parts[0] == "model" and parts[1] == "layers", hf_name
    bid = int(parts[2])
    mid = ".".join(parts[3:-1])
    return f"blk.{bid}.{HF_TO_GGUF[mid]}.{parts[-1]}"


def gguf_tensors(hf_dir):
    """(gguf name, float32 numpy array in HF (out, in) layout) with the converter's +1 on *norm.weight."""
    res = []
    for name, t in hf_state(hf_dir):
        if name == "lm_head.weight":  # never stored (tied); the converter would skip it too
            continue
        t = t.to(torch.float32)
        if name.endswith("norm.weight"):  # Gemma3Model.norm_shift: 1.0 for every tensor ending in norm.weight
            t = t + 1.0
        res.append((gguf_name(name), t.numpy().copy()))
    return res


def write_gguf(path, cfg, tensors, vocab, extra=None, drop=()):
    """extra: {key: (value, GGUFValueType)} added after the hyperparameters (for experiments);
    drop: key names left out (for experiments)."""
    tokens, scores, types = vocab
    arch = "gemma3"
    w = gguf.GGUFWriter(path, arch)  # general.architecture
    kv = []  # (key, adder) in the converter's order; later duplicates overwrite (the converter does that)
    A = lambda k: k.format(arch=arch)  # noqa: E731
    K = gguf.Keys
    kv += [(K.General.TYPE, lambda: w.add_type("model")),
           (K.General.NAME, lambda: w.add_name("Gemma3 Tiny Random")),
           (K.General.SIZE_LABEL, lambda: w.add_size_label(
               gguf.size_label(sum(int(a.size) for _, a in tensors), sum(int(a.size) for _, a in tensors), 0, 0))),
           (A(K.LLM.BLOCK_COUNT), lambda: w.add_block_count(cfg.num_hidden_layers)),
           (A(K.LLM.CONTEXT_LENGTH), lambda: w.add_context_length(cfg.max_position_embeddings)),
           (A(K.LLM.EMBEDDING_LENGTH), lambda: w.add_embedding_length(cfg.hidden_size)),
           (A(K.LLM.FEED_FORWARD_LENGTH), lambda: w.add_feed_forward_length(cfg.intermediate_size)),
           (A(K.Attention.HEAD_COUNT), lambda: w.add_head_count(cfg.num_attention_heads)),
           (A(K.Attention.HEAD_COUNT_KV), lambda: w.add_head_count_kv(cfg.num_key_value_heads)),
           (A(K.Rope.FREQ_BASE), lambda: w.add_rope_freq_base(cfg.rope_parameters["full_attention"]["rope_theta"])),
           (A(K.Rope.FREQ_BASE_SWA),
            lambda: w.add_rope_freq_base_swa(cfg.rope_parameters["sliding_attention"]["rope_theta"])),
           (A(K.Attention.LAYERNORM_RMS_EPS), lambda: w.add_layer_norm_rms_eps(cfg.rms_norm_eps)),
           (A(K.Attention.KEY_LENGTH), lambda: w.add_key_length(cfg.head_dim)),
           (A(K.Attention.VALUE_LENGTH), lambda: w.add_value_length(cfg.head_dim)),
           (K.General.FILE_TYPE, lambda: w.add_file_type(gguf.LlamaFileType.ALL_F32)),
           (A(K.Attention.SLIDING_WINDOW), lambda: w.add_sliding_window(cfg.sliding_window)),
           (K.General.QUANTIZATION_VERSION, lambda: w.add_quantization_version(gguf.GGML_QUANT_VERSION)),
           (K.Tokenizer.MODEL, lambda: w.add_tokenizer_model("llama")),
           (K.Tokenizer.PRE, lambda: w.add_tokenizer_pre("default")),
           (K.Tokenizer.LIST, lambda: w.add_token_list(tokens)),
           (K.Tokenizer.SCORES, lambda: w.add_token_scores(scores)),
           (K.Tokenizer.TOKEN_TYPE, lambda: w.add_token_types(types)),
           (K.Tokenizer.BOS_ID, lambda: w.add_bos_token_id(2)),
           (K.Tokenizer.EOS_ID, lambda: w.add_eos_token_id(1)),
           (K.Tokenizer.UNK_ID, lambda: w.add_unk_token_id(3)),
           (K.Tokenizer.PAD_ID, lambda: w.add_pad_token_id(0)),
           (K.Tokenizer.ADD_BOS, lambda: w.add_add_bos_token(True)),
           (K.Tokenizer.ADD_EOS, lambda: w.add_add_eos_token(False)),
           (K.Tokenizer.ADD_PREFIX, lambda: w.add_add_space_prefix(False))]
    for key, adder in kv:
        if key not in drop:
            adder()
    for key, (val, vt) in (extra or {}).items():
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_array(key, val)
        else:
            w.add_key_value(key, val, vt)
    for name, arr in tensors:
        w.add_tensor(name, arr)  # numpy (out, in) -> GGUF ne = [in, out]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_gguf(path):
    """{key: python value}, {tensor name: (type name, ne list, float64 array in numpy (rows, ne0) layout)}"""
    r = gguf.GGUFReader(path)
    kv = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        kv[f.name] = f.contents()
    ts = {}
    for t in r.tensors:
        ts[t.name] = (t.tensor_type.name, [int(x) for x in t.shape], t)
    return kv, ts


# --------------------------------------------------------------------------------------------
# Plain float64 reference computed from the GGUF file (independent of transformers)
# --------------------------------------------------------------------------------------------


class Ref64:
    """Gemma 3 forward in float64 NumPy from a GGUF (F32, or quantized tensors dequantized by gguf-py), following llama.cpp's graph (src/models/gemma3.cpp)
    without its numerics. Knobs change one convention at a time (for the sensitivity table)."""

    def __init__(self, path, swa_offset=0, swa_base=None, pattern=None, norm_shift=0.0, embed_scale=None,
                 gelu_fp16=False, attn_f16=False):
        kv, ts = read_gguf(path)
        a = kv["general.architecture"]
        self.n_layer = kv[f"{a}.block_count"]
        self.n_embd = kv[f"{a}.embedding_length"]
        self.n_head = kv[f"{a}.attention.head_count"]
        self.n_kv = kv[f"{a}.attention.head_count_kv"]
        self.hd = kv[f"{a}.attention.key_length"]
        self.eps = float(kv[f"{a}.attention.layer_norm_rms_epsilon"])
        self.swa = kv[f"{a}.attention.sliding_window"] + swa_offset
        self.base = float(kv[f"{a}.rope.freq_base"])
        self.base_swa = float(swa_base if swa_base is not None else kv.get(f"{a}.rope.freq_base_swa", 10000.0))
        pat = pattern if pattern is not None else kv.get(f"{a}.attention.sliding_window_pattern", 6)
        if isinstance(pat, list):  # per-layer bool array
            self.is_swa = [bool(b) for b in pat]
        else:  # llama_hparams::set_swa_pattern(n): layer il is SWA iff il % n < n - 1
            self.is_swa = [(il % pat) < (pat - 1) for il in range(self.n_layer)]
        self.norm_shift = norm_shift  # added to every norm weight (0: the file's weights as they are)
        self.embed_scale = embed_scale if embed_scale is not None else float(np.sqrt(self.n_embd))
        # emulations of two llama.cpp CPU roundings (to explain its noise; off for the reference):
        self.gelu_fp16 = gelu_fp16  # GEGLU through the fp16 GELU table (ggml-cpu/vec.h ggml_vec_geglu_f32)
        self.attn_f16 = attn_f16    # f16 K/V cache, q and softmax probabilities rounded to f16 for the matmuls
        self.W = {}
        for name, (ty, ne, t) in ts.items():  # quantized tensors: gguf-py's dequantizer, then exact math
            arr = np.asarray(t.data) if ty == "F32" else gguf.quants.dequantize(t.data, t.tensor_type)
            self.W[name] = np.asarray(arr, dtype=np.float64).reshape(list(reversed(ne)))

    def rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * (w + self.norm_shift)

    @staticmethod
    def rope(x, pos, base):  # NEOX / HF rotate_half: pairs (i, i + d/2)
        d = x.shape[-1]
        half = d // 2
        inv = base ** (-2.0 * np.arange(half, dtype=np.float64) / d)
        th = pos[:, None].astype(np.float64) * inv[None, :]
        c = np.cos(th)[:, None, :]
        s = np.sin(th)[:, None, :]
        x0, x1 = x[..., :half], x[..., half:]
        return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], -1)

    def gelu_tanh(self, x):
        if self.gelu_fp16:
            h = x.astype(np.float16).astype(np.float32)
            t = (np.float32(0.5) * h * (np.float32(1) + np.tanh(np.float32(0.7978845608028654) * h * (
                np.float32(1) + np.float32(0.044715) * h * h)))).astype(np.float16).astype(np.float64)
            return np.where(x <= -10, 0.0, np.where(x >= 10, x, t))
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))

    def forward(self, toks):
        T = len(toks)
        pos = np.arange(T)
        W = self.W
        x = W["token_embd.weight"][np.array(toks)] * self.embed_scale
        for il in range(self.n_layer):
            p = f"blk.{il}."
            h = self.rms(x, W[p + "attn_norm.weight"])
            q = (h @ W[p + "attn_q.weight"].T).reshape(T, self.n_head, self.hd)
            k = (h @ W[p + "attn_k.weight"].T).reshape(T, self.n_kv, self.hd)
            v = (h @ W[p + "attn_v.weight"].T).reshape(T, self.n_kv, self.hd)
            q = self.rms(q, W[p + "attn_q_norm.weight"])
            k = self.rms(k, W[p + "attn_k_norm.weight"])
            base = self.base_swa if self.is_swa[il] else self.base
            q = self.rope(q, pos, base) / np.sqrt(self.hd)
            k = self.rope(k, pos, base)
            h16 = (lambda a_: a_.astype(np.float16).astype(np.float64)) if self.attn_f16 else (lambda a_: a_)
            q, k, v = h16(q), h16(k), h16(v)
            masked = pos[None, :] > pos[:, None]
            if self.is_swa[il]:
                masked |= (pos[:, None] - pos[None, :]) >= self.swa  # llama.cpp is_masked_swa
            outs = []
            for hh in range(self.n_head):
                kvh = hh // (self.n_head // self.n_kv)
                s = q[:, hh, :] @ k[:, kvh, :].T
                s = np.where(masked, -np.inf, s)
                s = np.exp(s - s.max(-1, keepdims=True))
                outs.append(h16(s / s.sum(-1, keepdims=True)) @ v[:, kvh, :])
            o = np.concatenate(outs, -1) @ W[p + "attn_output.weight"].T
            sa = self.rms(o, W[p + "post_attention_norm.weight"]) + x
            f = self.rms(sa, W[p + "ffn_norm.weight"])
            f = (self.gelu_tanh(f @ W[p + "ffn_gate.weight"].T) * (f @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
            x = self.rms(f, W[p + "post_ffw_norm.weight"]) + sa
        x = self.rms(x, W["output_norm.weight"])
        return x @ W["token_embd.weight"].T


# --------------------------------------------------------------------------------------------
# transformers
# --------------------------------------------------------------------------------------------


def hf_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].double().numpy()


def hf_token_by_token(model, ids):
    with torch.no_grad():
        past = None
        rows = []
        for t in ids:
            out = model(input_ids=torch.tensor([[t]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            rows.append(out.logits[0, -1].double().numpy())
    return np.stack(rows), past


def hf_greedy(model, prompt, n_new):
    """Prefill + one call per new token with the cache; the step logits each new id is the argmax of."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt]), use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1]
        new, steps, margins = [], [], []
        for i in range(n_new):
            steps.append(logits.double().numpy().copy())
            top = torch.topk(logits, 2).values
            margins.append(f32(top[0] - top[1]))
            nxt = int(torch.argmax(logits))
            new.append(nxt)
            if i == n_new - 1:
                break
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1]
        cache = [[list(l.keys.shape), list(l.values.shape)] for l in past.layers]
        gc = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=n_new, min_new_tokens=n_new,
                              eos_token_id=None, bos_token_id=None, pad_token_id=0, use_cache=True)
        gen = model.generate(torch.tensor([prompt]), generation_config=gc, return_dict_in_generate=True,
                             output_logits=True)
        gen_new = gen.sequences[0, len(prompt):].tolist()
        gen_logits = torch.stack([l[0] for l in gen.logits]).double().numpy()
    steps = np.stack(steps)
    if gen_new != new:
        raise SystemExit(f"greedy loop and generate() disagree: {new} vs {gen_new}")
    return new, steps, margins, cache, maxabs(gen_logits, steps)


# --------------------------------------------------------------------------------------------
# llama.cpp (llama-cpp-python)
# --------------------------------------------------------------------------------------------


def llama_open(path, **kw):
    from llama_cpp import Llama

    return Llama(model_path=path, n_ctx=N_CTX, logits_all=True, n_threads=LLAMA_THREADS,
                 n_threads_batch=LLAMA_THREADS, verbose=False, **kw)


def llama_batch(path, seqs, **kw):
    out = []
    for ids in seqs:
        llm = llama_open(path, **kw)
        llm.eval(ids)  # one llama_decode of len(ids) tokens (n_batch = n_ctx = 128), logits for every row
        out.append(np.array(llm.scores[:len(ids)], dtype=np.float64))
        llm.close()
    return out


def llama_token_by_token(path, seqs, **kw):
    out = []
    for ids in seqs:
        llm = llama_open(path, **kw)
        for t in ids:
            llm.eval([t])  # one llama_decode per token, positions continue in the KV cache
        out.append(np.array(llm.scores[:len(ids)], dtype=np.float64))
        llm.close()
    return out


def llama_greedy(path, prompt, n_new):
    llm = llama_open(path)
    llm.eval(prompt)
    row = np.array(llm.scores[len(prompt) - 1], dtype=np.float64)
    new, steps = [], []
    for i in range(n_new):
        steps.append(row)
        nxt = int(np.argmax(row))
        new.append(nxt)
        if i == n_new - 1:
            break
        llm.eval([nxt])
        row = np.array(llm.scores[len(prompt) + i], dtype=np.float64)
    llm.close()
    return new, np.stack(steps)


def llama_tokenize(path, texts):
    llm = llama_open(path)
    res = []
    for t in texts:
        ids = llm.tokenize(t.encode("utf-8"), add_bos=True, special=False)
        ids_sp = llm.tokenize(t.encode("utf-8"), add_bos=True, special=True)
        res.append({"text": t, "ids": ids, "ids_parse_special": ids_sp,
                    "pieces": [llm._model.token_get_text(i) for i in ids]})
    llm.close()
    return res


def llama_print_info(path):
    """llama.cpp's own log of the hyperparameters it loaded (a subprocess with verbose=True)."""
    code = ("import sys; from llama_cpp import Llama; "
            f"Llama(model_path={path!r}, n_ctx={N_CTX}, n_threads=1, verbose=True)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    keep = ("n_swa", "is_swa", "swa", "freq_base", "n_rot", "n_embd_head", "n_head", "f_attn_scale", "rope type",
            "n_ctx_train", "n_layer", "causal", "model type", "file type", "flash_attn", "type_k", "vocab type",
            "n_vocab", "BOS", "EOS", "UNK", "PAD", "LF token", "EOT", "EOG", "n_ff", "f_norm_rms_eps", "kv_unified",
            "n_ctx_seq", "n_ctx ", "n_batch", "n_ubatch")
    lines = []
    for ln in r.stderr.splitlines():
        s = ln.strip()
        if (s.startswith("print_info:") or s.startswith("llama_context:") or "kv_cache" in s) and any(k in s for k in keep):
            lines.append(s)
    return lines


def llama_quantize(src, dst, ftype):
    import llama_cpp as L

    p = L.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 1
    rc = L.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc})")


# --------------------------------------------------------------------------------------------
# llama.cpp's converter, for a one-off cross-check (--converter DIR)
# --------------------------------------------------------------------------------------------


def converter_check(llama_src, hf_dir, vocab, ours):
    """Write a SentencePiece tokenizer.model + tokenizer_config.json with our vocabulary next to a copy of hf/,
    run DIR/convert_hf_to_gguf.py --outtype f32, and compare with `ours` (keys, values, tensors)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    tokens, scores, types = vocab
    tmp = tempfile.mkdtemp(prefix="gemma3-conv-")
    try:
        d = os.path.join(tmp, "hf")
        shutil.copytree(hf_dir, d)
        m = pb.ModelProto()
        m.trainer_spec.model_type = pb.TrainerSpec.BPE
        m.trainer_spec.vocab_size = len(tokens)
        m.trainer_spec.byte_fallback = True
        m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 3, 2, 1, 0
        m.normalizer_spec.name = "identity"
        m.normalizer_spec.add_dummy_prefix = False
        m.normalizer_spec.remove_extra_whitespaces = False
        for i, (t, s, ty) in enumerate(zip(tokens, scores, types)):
            sp = m.pieces.add()
            sp.piece, sp.score = t, (0.0 if ty == TT_CONTROL else s)
            sp.type = pb.ModelProto.SentencePiece.UNKNOWN if i == 3 else ty
        with open(os.path.join(d, "tokenizer.model"), "wb") as f:
            f.write(m.SerializeToString())
        # as in Gemma's tokenizer_config.json: the special tokens are "added tokens" with special=true
        tc = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<bos>", "eos_token": "<eos>",
              "unk_token": "<unk>", "pad_token": "<pad>",
              "added_tokens_decoder": {str(i): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                                                "normalized": False, "single_word": False}
                                       for i, t in enumerate(SPECIALS)}}
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(tc, f)
        outp = os.path.join(tmp, "conv.gguf")
        r = subprocess.run([sys.executable, os.path.join(llama_src, "convert_hf_to_gguf.py"), d, "--outtype", "f32",
                            "--outfile", outp], capture_output=True, text=True)
        if r.returncode != 0:
            return {"ran": False, "error": r.stderr[-2000:]}
        kv_c, ts_c = read_gguf(outp)
        kv_o, ts_o = read_gguf(ours)
        diff_keys = {}
        for k in sorted(set(kv_c) | set(kv_o)):
            a, b = kv_c.get(k, "<absent>"), kv_o.get(k, "<absent>")
            if k == "general.name" or a == b:
                continue
            if isinstance(a, float) and isinstance(b, float) and np.float32(a) == np.float32(b):
                continue
            diff_keys[k] = {"converter": a if not isinstance(a, list) else f"list[{len(a)}]",
                            "ours": b if not isinstance(b, list) else f"list[{len(b)}]"}
        tdiff = {}
        for n in sorted(set(ts_c) | set(ts_o)):
            if n not in ts_c or n not in ts_o:
                tdiff[n] = "missing in " + ("converter" if n not in ts_c else "ours")
                continue
            (tc_, nc, tc_t), (to_, no, to_t) = ts_c[n], ts_o[n]
            if tc_ != to_ or nc != no or not np.array_equal(np.asarray(tc_t.data), np.asarray(to_t.data)):
                tdiff[n] = f"{tc_}{nc} vs {to_}{no}"
        order_c = list(ts_c)
        order_o = list(ts_o)
        return {"ran": True, "command": "convert_hf_to_gguf.py hf/ --outtype f32 (with a generated tokenizer.model "
                                        "and tokenizer_config.json holding this vocabulary)",
                "keys_converter": list(kv_c), "keys_ours": list(kv_o),
                "key_value_differences": diff_keys, "tensor_differences": tdiff,
                "tensor_order_equal": order_c == order_o,
                "general_name": {"converter": kv_c.get("general.name"), "ours": kv_o.get("general.name")}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Main generation
# --------------------------------------------------------------------------------------------


def generate(out_dir, do_quant=True, llama_src=None):
    t0 = time.time()
    os.makedirs(out_dir, exist_ok=True)
    hf_dir = os.path.join(out_dir, "hf")
    gguf_path = os.path.join(out_dir, "tiny-f32.gguf")

    # 1. the HF model
    build_hf(hf_dir)
    model = load_hf(hf_dir)
    cfg = model.config
    assert cfg.layer_types == ["sliding_attention"] * 5 + ["full_attention"], cfg.layer_types
    with open(os.path.join(hf_dir, "config.json")) as f:
        config_json = json.load(f)

    # 2. the GGUF
    vocab = build_vocab(cfg.vocab_size)
    tensors = gguf_tensors(hf_dir)
    write_gguf(gguf_path, cfg, tensors, vocab)
    os.chmod(gguf_path, 0o644)
    kv, ts = read_gguf(gguf_path)
    gguf_kv = {k: (v if not isinstance(v, list) else f"array[{len(v)}]") for k, v in kv.items()}
    gguf_table = [[n, ty, ne] for n, (ty, ne, _) in ts.items()]

    seqs = [{"name": n, "seed": s, "ids": seeded_ids(s, L, cfg.vocab_size)} for n, s, L in SEQ_SPECS]
    ids_list = [s["ids"] for s in seqs]

    # 3. transformers (float32, eager), and float64 for reference
    hf = [hf_logits(model, ids) for ids in ids_list]
    hf_tbt = [hf_token_by_token(model, ids)[0] for ids in ids_list]
    prompt = ids_list[-1]
    g_new, g_steps, g_margins, g_cache, g_gen_diff = hf_greedy(model, prompt, N_GREEDY)
    g_nocache = hf_logits(model, prompt + g_new[:-1])[len(prompt) - 1:]
    model64 = load_hf(hf_dir, torch.float64)
    hf64 = [hf_logits(model64, ids) for ids in ids_list]
    # (the embedding scale: HF multiplies by embed_scale.to(weight.dtype); sqrt(64) = 8 exactly in every dtype)
    embed_scale = float(model.model.embed_tokens.embed_scale.to(torch.float32))

    # 4. plain float64 reference from the GGUF file
    ref = Ref64(gguf_path)
    r64 = [ref.forward(ids) for ids in ids_list]
    r64_greedy = ref.forward(prompt + g_new[:-1])[len(prompt) - 1:]
    # sensitivity: how much each wrong convention would move the logits of the 24-token sequence
    long_ids = ids_list[-1]
    variants = {
        "sliding window one wider (mask p_q - p_k > W, i.e. W+1 keys)": Ref64(gguf_path, swa_offset=1),
        "sliding window one narrower (mask p_q - p_k >= W-1)": Ref64(gguf_path, swa_offset=-1),
        "sliding layers with the global rope base 1e6": Ref64(gguf_path, swa_base=1_000_000.0),
        "no sliding window at all (pattern 1 -> every layer global)": Ref64(gguf_path, pattern=1),
        "GGUF norm weights used as 1 + w (norm shift applied twice)": Ref64(gguf_path, norm_shift=1.0),
        "no embedding scale (x 1 instead of x sqrt(64) = 8)": Ref64(gguf_path, embed_scale=1.0),
    }
    sensitivity = {k: maxabs(v.forward(long_ids), r64[-1]) for k, v in variants.items()}

    # gguf_ref.py (shared/bench) on the tiny file, plain mode
    gguf_ref = {}
    if os.path.isfile(os.path.join(BENCH, "gguf_ref.py")):
        sys.path.insert(0, BENCH)
        try:
            import gguf_ref as GR

            for dt, nm in ((np.float64, "float64"), (np.float32, "float32")):
                m = GR.Model(gguf_path, False, dt)
                gguf_ref[f"plain_{nm}_vs_ref64"] = max(maxabs(m.forward(ids), r) for ids, r in zip(ids_list, r64))
                gguf_ref[f"plain_{nm}_vs_transformers"] = max(maxabs(m.forward(ids), h) for ids, h in zip(ids_list, hf))
            try:
                GR.Model(gguf_path, True, np.float32).forward(ids_list[1])
                gguf_ref["faithful_mode"] = "ran"
            except Exception as e:  # F32 weights have no activation-quantization rule in VEC_DOT_RT
                gguf_ref["faithful_mode"] = f"does not run on an F32 file: {type(e).__name__}: {e}"
        finally:
            sys.path.remove(BENCH)
    else:
        gguf_ref["skipped"] = f"{BENCH}/gguf_ref.py not found"

    # 5. llama.cpp
    import llama_cpp as L

    lc_batch = llama_batch(gguf_path, ids_list)
    lc_tbt = llama_token_by_token(gguf_path, ids_list)
    lc_batch_f32kv = llama_batch(gguf_path, ids_list, type_k=L.GGML_TYPE_F32, type_v=L.GGML_TYPE_F32)
    lc_tbt_f32kv = llama_token_by_token(gguf_path, ids_list, type_k=L.GGML_TYPE_F32, type_v=L.GGML_TYPE_F32)
    lc_greedy_new, lc_greedy_steps = llama_greedy(gguf_path, prompt, N_GREEDY)
    lc_batch_2threads = None
    try:
        global LLAMA_THREADS
        LLAMA_THREADS, keep = 2, LLAMA_THREADS
        lc_batch_2threads = llama_batch(gguf_path, ids_list)
    finally:
        LLAMA_THREADS = keep
    print_info = llama_print_info(gguf_path)
    tok_texts = ["Hello world", "The capital of France is", "the man said: 42!", "<start_of_turn>user\nHi<end_of_turn>",
                 "  two spaces, a tab\tand ü€😀"]
    tokenization = llama_tokenize(gguf_path, tok_texts)

    # convention experiments in llama.cpp: variants of the GGUF file
    exp = {}
    with tempfile.TemporaryDirectory() as td:
        V = gguf.GGUFValueType
        trials = {
            "without gemma3.rope.freq_base_swa (llama.cpp default 10000)": dict(drop=("gemma3.rope.freq_base_swa",)),
            "gemma3.rope.freq_base_swa = 1e6": dict(drop=("gemma3.rope.freq_base_swa",),
                                                   extra={"gemma3.rope.freq_base_swa": (1_000_000.0, V.FLOAT32)}),
            "gemma3.attention.sliding_window_pattern = 6 (u32)": dict(
                extra={"gemma3.attention.sliding_window_pattern": (6, V.UINT32)}),
            "gemma3.attention.sliding_window_pattern = 3 (u32)": dict(
                extra={"gemma3.attention.sliding_window_pattern": (3, V.UINT32)}),
            "gemma3.attention.sliding_window_pattern = [T,T,T,T,T,F] (bool array)": dict(
                extra={"gemma3.attention.sliding_window_pattern": ([True] * 5 + [False], V.ARRAY)}),
            "gemma3.attention.sliding_window = 9": dict(drop=("gemma3.attention.sliding_window",),
                                                       extra={"gemma3.attention.sliding_window": (9, V.UINT32)}),
        }
        base_row = lc_batch[-1]
        for name, kw in trials.items():
            p = os.path.join(td, "v.gguf")
            write_gguf(p, cfg, tensors, vocab, **kw)
            try:
                lg = llama_batch(p, [long_ids])[0]
                rv = Ref64(p).forward(long_ids)  # the float64 reference reading the same variant file
                exp[name] = {"llamacpp_change_vs_tiny_f32_gguf": maxabs(lg, base_row),
                             "ref64_change_vs_tiny_f32_gguf": maxabs(rv, r64[-1]),
                             "llamacpp_vs_ref64_same_variant": maxabs(lg, rv)}
            except Exception as e:
                exp[name] = {"error": f"{type(e).__name__}: {e}"}

    # an old-style config.json (keys of configs saved by transformers 4.5x: rope_theta, rope_local_base_freq,
    # sliding_window_pattern; no rope_parameters / layer_types) loads to the same model in transformers 5.23
    with tempfile.TemporaryDirectory() as td:
        od = os.path.join(td, "old")
        shutil.copytree(hf_dir, od)
        oc = dict(config_json)
        for k in ("rope_parameters", "layer_types", "_sliding_window_pattern"):
            oc.pop(k, None)
        oc.update({"rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0, "sliding_window_pattern": 6,
                   "rope_scaling": None})
        with open(os.path.join(od, "config.json"), "w") as f:
            json.dump(oc, f)
        om = load_hf(od)
        old_style = {"config_keys_removed": ["rope_parameters", "layer_types", "_sliding_window_pattern"],
                     "config_keys_added": {"rope_theta": 1e6, "rope_local_base_freq": 1e4,
                                           "sliding_window_pattern": 6, "rope_scaling": None},
                     "loaded_rope_parameters": om.config.rope_parameters,
                     "loaded_layer_types": om.config.layer_types,
                     "max_abs_logit_diff_len24": maxabs(hf_logits(om, long_ids), hf[-1])}
        del om

    # llama.cpp's noise explained: the float64 reference with llama.cpp's roundings emulated
    r64_gelu16 = [Ref64(gguf_path, gelu_fp16=True).forward(ids) for ids in ids_list]
    r64_emul = [Ref64(gguf_path, gelu_fp16=True, attn_f16=True).forward(ids) for ids in ids_list]

    # 6. converter cross-check (optional)
    conv = converter_check(llama_src, hf_dir, vocab, gguf_path) if llama_src else None

    # 7. measurements
    def per_seq(a_list, b_list):
        return [maxabs(a, b) for a, b in zip(a_list, b_list)]

    def first_pos(a_list, b_list):
        return max(maxabs(a[:1], b[:1]) for a, b in zip(a_list, b_list))

    def argmax_agree(a_list, b_list):
        n = sum(len(a) for a in a_list)
        same = sum(int((np.argmax(a, -1) == np.argmax(b, -1)).sum()) for a, b in zip(a_list, b_list))
        return f"{same}/{n}"

    meas = {
        "transformers_f32_vs_ref64": per_seq(hf, r64),
        "transformers_f64_vs_ref64": per_seq(hf64, r64),
        "transformers_f32_vs_transformers_f64": per_seq(hf, hf64),
        "transformers_greedy_step_logits_vs_ref64": maxabs(g_steps, r64_greedy),
        "transformers_cache_token_by_token_vs_full_forward": per_seq(hf_tbt, hf),
        "transformers_greedy_steps_vs_no_cache_forward": maxabs(g_steps, g_nocache),
        "transformers_greedy_steps_vs_generate": g_gen_diff,
        "llamacpp_batch_vs_transformers": per_seq(lc_batch, hf),
        "llamacpp_token_by_token_vs_transformers": per_seq(lc_tbt, hf),
        "llamacpp_batch_vs_token_by_token": per_seq(lc_batch, lc_tbt),
        "llamacpp_batch_vs_ref64": per_seq(lc_batch, r64),
        "llamacpp_first_position_vs_transformers": first_pos(lc_batch, hf),
        "llamacpp_mean_abs_batch_vs_transformers": f32(np.mean(np.concatenate([np.abs(a - b).ravel() for a, b in zip(lc_batch, hf)]))),
        "llamacpp_f32_kv_cache_batch_vs_transformers": per_seq(lc_batch_f32kv, hf),
        "llamacpp_f32_kv_cache_token_by_token_vs_transformers": per_seq(lc_tbt_f32kv, hf),
        "llamacpp_batch_2_threads_vs_1_thread": per_seq(lc_batch_2threads, lc_batch),
        "llamacpp_greedy_step_logits_vs_transformers": maxabs(lc_greedy_steps, g_steps),
        "ref64_with_fp16_gelu_table_vs_llamacpp_f32_kv_cache_batch": per_seq(lc_batch_f32kv, r64_gelu16),
        "ref64_with_fp16_gelu_table_and_f16_attention_vs_llamacpp_batch": per_seq(lc_batch, r64_emul),
        "ref64_with_fp16_gelu_table_and_f16_attention_vs_llamacpp_token_by_token": per_seq(lc_tbt, r64_emul),
        "llamacpp_argmax_agreement_batch": argmax_agree(lc_batch, hf),
        "llamacpp_argmax_agreement_token_by_token": argmax_agree(lc_tbt, hf),
        "logit_std_transformers": f32(np.concatenate([h.ravel() for h in hf]).std()),
        "logit_max_abs_transformers": f32(max(np.abs(h).max() for h in hf)),
    }
    worst_lc = max(max(meas["llamacpp_batch_vs_transformers"]), max(meas["llamacpp_token_by_token_vs_transformers"]),
                   meas["llamacpp_greedy_step_logits_vs_transformers"])
    worst_exact = max(max(meas["transformers_f32_vs_ref64"]), meas["transformers_greedy_step_logits_vs_ref64"])
    # margins of HF argmaxes (so a runtime with ~1e-5 error cannot flip them)
    all_margins = []
    for h in hf:
        top2 = np.sort(h, -1)[:, -2:]
        all_margins.extend((top2[:, 1] - top2[:, 0]).tolist())

    # 8. quantized copies
    quant = None
    if do_quant:
        qdir = os.path.join(out_dir, "quant")
        os.makedirs(qdir, exist_ok=True)
        qt = {}
        quant = {"source": "tiny-f32.gguf", "function": "llama_cpp.llama_model_quantize (defaults, nthread 1)",
                 "files": {}}
        seq13 = ids_list[1]
        for label, ftype in (("q8_0", L.LLAMA_FTYPE_MOSTLY_Q8_0), ("q4_k_m", L.LLAMA_FTYPE_MOSTLY_Q4_K_M)):
            qp = os.path.join(qdir, f"tiny-{label}.gguf")
            llama_quantize(gguf_path, qp, ftype)
            os.chmod(qp, 0o644)
            qkv, qts = read_gguf(qp)
            lg = llama_batch(qp, [seq13])[0]
            qt[f"{label}.batch.logits"] = lg
            plain = Ref64(qp).forward(seq13)
            qt[f"{label}.plain_f64.logits"] = plain
            grq = {}
            if os.path.isfile(os.path.join(BENCH, "gguf_ref.py")):
                sys.path.insert(0, BENCH)
                try:
                    import gguf_ref as GR

                    grq["gguf_ref_plain_float64_vs_plain_f64"] = maxabs(GR.Model(qp, False, np.float64).forward(seq13), plain)
                    grq["gguf_ref_faithful_vs_llamacpp"] = maxabs(GR.Model(qp, True, np.float32).forward(seq13), lg)
                    grq["gguf_ref_faithful_vs_llamacpp_first_position"] = maxabs(
                        GR.Model(qp, True, np.float32).forward(seq13[:1]), lg[:1])
                except Exception as e:
                    grq["error"] = f"{type(e).__name__}: {e}"
                finally:
                    sys.path.remove(BENCH)
            counts = {}
            for n, (ty, ne, _) in qts.items():
                counts[ty] = counts.get(ty, 0) + 1
            quant["files"][f"tiny-{label}.gguf"] = {
                "requested_ftype": f"LLAMA_FTYPE_MOSTLY_{label.upper()} ({int(ftype)})",
                "general.file_type": qkv.get("general.file_type"),
                "bytes": os.path.getsize(qp), "sha256": sha256_file(qp),
                "type_counts": counts,
                "tensor_types": {n: ty for n, (ty, ne, _) in qts.items()},
                "logits_key": f"{label}.batch.logits", "sequence": "random_len13 (reference.json sequences[1])",
                "plain_f64_logits_key": f"{label}.plain_f64.logits",
                "plain_f64": "Ref64 on this file: weights dequantized (gguf-py), float64 math - what an exact "
                             "runtime that dequantizes the weights computes",
                "max_abs_diff_llamacpp_vs_plain_f64": maxabs(lg, plain),
                "argmax_agreement_llamacpp_vs_plain_f64": argmax_agree([lg], [plain]),
                "max_abs_diff_plain_f64_vs_transformers_f32_model": maxabs(plain, hf[1]),
                **grq,
                "max_abs_diff_vs_transformers": maxabs(lg, hf[1]),
                "max_abs_diff_vs_llamacpp_f32_batch": maxabs(lg, lc_batch[1]),
                "argmax_agreement_vs_transformers": argmax_agree([lg], [hf[1]]),
            }
        worst_q = max(v["max_abs_diff_llamacpp_vs_plain_f64"] for v in quant["files"].values())
        quant["suggested"] = {
            "runtime_with_dequantized_weights_vs_plain_f64": 1e-4,
            "runtime_vs_llamacpp_quant_logits": f32(np.ceil(worst_q * 3 * 10) / 10),
            "note": f"llama.cpp rounds the activations to Q8_0 blocks before every product with a Q8_0/Q5_0 weight "
                    f"(vec_dot_type), hence |llama.cpp - plain| up to {worst_q:.3g} here; a runtime that does the same "
                    f"integer dot products should land much closer to llama.cpp than that",
        }
        write_tensors(os.path.join(qdir, "logits.safetensors"), qt)
        write_json(os.path.join(qdir, "quant.json"), quant)

    # 9. write reference files
    tensors_out = {}
    seq_recs = []
    for i, s in enumerate(seqs):
        tensors_out[f"transformers.logits.{i}"] = hf[i]
        tensors_out[f"llamacpp.batch.logits.{i}"] = lc_batch[i]
        tensors_out[f"llamacpp.token_by_token.logits.{i}"] = lc_tbt[i]
        seq_recs.append({"index": i, "name": s["name"], "seed": s["seed"], "length": len(s["ids"]),
                         "input_ids": s["ids"], "logits_shape": [len(s["ids"]), cfg.vocab_size],
                         "transformers_logits_key": f"transformers.logits.{i}",
                         "llamacpp_batch_logits_key": f"llamacpp.batch.logits.{i}",
                         "llamacpp_token_by_token_logits_key": f"llamacpp.token_by_token.logits.{i}",
                         "argmax_transformers": np.argmax(hf[i], -1).tolist(),
                         "argmax_llamacpp_batch": np.argmax(lc_batch[i], -1).tolist()})
    tensors_out["transformers.greedy.step_logits"] = g_steps
    tensors_out["llamacpp.greedy.step_logits"] = lc_greedy_steps
    write_tensors(os.path.join(out_dir, "reference.safetensors"), tensors_out)

    reference = {
        "model": {"hf": "hf/ (Gemma3ForCausalLM, model_type gemma3_text, float32, tied lm_head not stored)",
                  "gguf": "tiny-f32.gguf (arch gemma3, all tensors F32, norm weights + 1)",
                  "hf_model_sha256": sha256_file(os.path.join(hf_dir, "model.safetensors")),
                  "gguf_sha256": sha256_file(gguf_path),
                  "gguf_bytes": os.path.getsize(gguf_path),
                  "n_params": int(sum(p.numel() for p in model.parameters())),
                  "layer_types": cfg.layer_types,
                  "embed_scale": embed_scale},
        "recipe": {"config_kwargs": CONFIG_KW,
                   "init": f"torch.manual_seed({MODEL_SEED}); Gemma3ForCausalLM(Gemma3TextConfig(**config_kwargs)); "
                           f"then one torch.Generator().manual_seed({MODEL_SEED}) draws torch.randn for every "
                           f"parameter in named_parameters() order: 1-D (RMSNorm w) {NORM_STD}*N, others {MATRIX_STD}*N",
                   "sequences": "[2] + torch.randint(0, 512, (length-1,), generator=torch.Generator().manual_seed(seed)).tolist()",
                   "attn_implementation": ATTN, "torch_threads": torch.get_num_threads(),
                   "llamacpp": {"n_ctx": N_CTX, "n_batch": N_CTX, "threads": LLAMA_THREADS, "logits_all": True,
                                "flash_attn": False, "type_k": "f16", "type_v": "f16",
                                "batch": "fresh context, Llama.eval(all ids): one llama_decode",
                                "token_by_token": "fresh context, Llama.eval([id]) per id: one llama_decode each"}},
        "sequences": seq_recs,
        "greedy": {"prompt": "sequences[2]", "prompt_ids": prompt, "new_ids": g_new, "output_ids": prompt + g_new,
                   "decoding": f"argmax (ties to the lowest id), {N_GREEDY} new tokens, KV cache, no stop token",
                   "transformers_step_logits_key": "transformers.greedy.step_logits",
                   "llamacpp_step_logits_key": "llamacpp.greedy.step_logits",
                   "llamacpp_new_ids": lc_greedy_new, "llamacpp_ids_equal": lc_greedy_new == g_new,
                   "top1_minus_top2_per_step": g_margins, "min_margin": min(g_margins),
                   "kv_cache_at_end_per_layer": g_cache},
        "tolerances": {
            "measured_max_abs": meas,
            "min_top1_minus_top2_margin_transformers_logits": f32(min(all_margins)),
            "suggested": {
                "exact_float32_runtime_vs_transformers_logits": 1e-4,
                "llamacpp_logits_vs_transformers_or_exact_runtime": f32(np.ceil(worst_lc * 4 * 100) / 100),
                "note": f"worst llama.cpp |Δ| measured {worst_lc:.3g} (f16 K/V cache, f16 q and softmax "
                        f"probabilities in the two attention matmuls, f16 GELU table); worst exact |Δ| "
                        f"(transformers f32 vs float64) {worst_exact:.3g}",
            },
        },
        "gguf": {"metadata": gguf_kv, "tensors": gguf_table},
        "llamacpp_print_info": print_info,
        "llamacpp_tokenization": tokenization,
        "conventions": {
            "sensitivity_ref64_max_abs_logit_change_len24": sensitivity,
            "llamacpp_file_variants_len24": exp,
            "gguf_ref_py": gguf_ref,
            "transformers_old_style_config": old_style,
        },
        "converter_check": conv,
        "config_json": config_json,
        "versions": versions(),
    }
    write_json(os.path.join(out_dir, "reference.json"), reference)
    log(f"done in {time.time() - t0:.1f}s -> {out_dir}")
    return reference


def compare_dirs(old, new):
    rep = {}
    for root, _, files in os.walk(new):
        for n in sorted(files):
            p = os.path.join(root, n)
            rel = os.path.relpath(p, new)
            q = os.path.join(old, rel)
            if not os.path.exists(q):
                rep[rel] = "missing on disk"
            elif sha256_file(p) == sha256_file(q):
                rep[rel] = "identical"
            elif n.endswith(".safetensors"):
                worst = (0.0, None)
                with safe_open(p, "pt") as fa, safe_open(q, "pt") as fb:
                    for k in fa.keys():
                        d = maxabs(fa.get_tensor(k).numpy(), fb.get_tensor(k).numpy())
                        if d >= worst[0]:
                            worst = (d, k)
                rep[rel] = f"max abs diff {worst[0]:.3e} ({worst[1]})"
            else:
                rep[rel] = "bytes differ"
    return rep


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--no-quant", action="store_true")
    ap.add_argument("--converter", default=None, metavar="LLAMA_CPP_DIR")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    if a.verify:
        tmp = tempfile.mkdtemp(prefix="gemma3-verify-")
        try:
            generate(tmp, not a.no_quant, a.converter)
            print(json.dumps(compare_dirs(a.out, tmp), indent=1))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    generate(a.out, not a.no_quant, a.converter)


if __name__ == "__main__":
    main()
