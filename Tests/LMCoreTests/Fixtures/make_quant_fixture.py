#!/usr/bin/env python3
"""Makes the quantized-block fixture of QuantKernelTests.testDequantizationMatchesGGUFPy.

Real blocks from real quantizers, dequantized by gguf-py (gguf.quants.dequantize):
  F16, BF16, Q8_0, Q5_0  gguf-py's numpy quantizers (gguf.quants.quantize)
  Q4_K, Q6_K (and Q8_0, Q5_0 again)  llama.cpp's quantizer, through llama-cpp-python's
        llama_model_quantize on a tiny F32 llama-architecture GGUF written with gguf-py's GGUFWriter
        (ftype Q4_K_M / Q6_K / Q8_0 / Q5_0, `pure` so every matrix gets the one type).
The rows quantized are random with deliberately varied character: normal rows, heavy outliers, a
zero row, constant rows, tiny rows (fp16 subnormal or zero scales), mixed-sign and one-signed rows.

Output (beside this script):
  quant_blocks.bin   raw block bytes of every entry, concatenated
  quant_values.bin   gguf-py's float32 dequantization (little-endian) of every entry, concatenated
  quant_fixture.json {"entries": [{"name", "type" (ggml id), "source", "rows", "n" (elements per row),
                      "blocks_offset", "blocks_bytes", "values_offset"}], ...}

Run with a Python that has gguf (0.19.0), numpy and llama-cpp-python (0.3.36), e.g.
  python Tests/LMCoreTests/Fixtures/make_quant_fixture.py
"""
import ctypes
import json
import os
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
N = 512      # elements per row (two K-quant super-blocks)
ROWS = 16    # rows per entry


def varied_rows(rng, rows, n):
    """Rows of different character, to reach many scale patterns."""
    out = np.empty((rows, n), np.float32)
    for r in range(rows):
        kind = r % 8
        if kind == 0:
            v = rng.standard_normal(n) * 0.05
        elif kind == 1:  # heavy outliers
            v = rng.standard_normal(n) * 0.02
            idx = rng.choice(n, 8, replace=False)
            v[idx] = rng.standard_normal(8) * 3
        elif kind == 2:  # an all-zero first half, then normal
            v = rng.standard_normal(n) * 0.1
            v[: n // 2] = 0
        elif kind == 3:  # constant pieces (one-signed sub-blocks)
            v = np.repeat(rng.uniform(-1, 1, n // 32), 32)
        elif kind == 4:  # tiny values: fp16 scales go subnormal or to zero
            v = rng.standard_normal(n) * 1e-6
            v[: n // 4] *= 1e-3
        elif kind == 5:  # all positive
            v = rng.uniform(0, 2, n)
        elif kind == 6:  # all negative, large
            v = -rng.uniform(0, 300, n)
        else:  # uniform, both signs, with a block of exact zeros
            v = rng.uniform(-1, 1, n)
            v[64:96] = 0
        out[r] = v.astype(np.float32)
    return out


def from_gguf_py(rng):
    entries = []
    for name in ("F16", "BF16", "Q8_0", "Q5_0"):
        w = varied_rows(rng, ROWS, N)
        blocks = gguf.quants.quantize(w, T[name])
        entries.append((name, "gguf-py quantize", np.ascontiguousarray(blocks).view(np.uint8)))
    return entries


def write_tiny_llama(path, rng):
    """A 1-layer llama with 512-wide rows in ffn_down (the rows this fixture keeps)."""
    n_embd, n_ff, n_vocab = 256, 512, 256
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(64)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // 2)
    w.add_file_type(0)  # ALL_F32
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"t{i}".encode() for i in range(n_vocab)])
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types([1] * n_vocab)
    f32 = lambda shape: (rng.standard_normal(shape) * 0.05).astype(np.float32)
    w.add_tensor("token_embd.weight", f32((n_vocab, n_embd)))
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("output.weight", f32((n_vocab, n_embd)))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, np.float32))
    for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
        w.add_tensor(f"blk.0.{t}.weight", f32((n_embd, n_embd)))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("blk.0.ffn_gate.weight", f32((n_ff, n_embd)))
    w.add_tensor("blk.0.ffn_up.weight", f32((n_ff, n_embd)))
    down = f32((n_embd, n_ff))  # numpy shape (rows, row length) = (256, 512)
    down[:ROWS] = varied_rows(rng, ROWS, n_ff)
    w.add_tensor("blk.0.ffn_down.weight", down)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def from_llama_cpp(rng):
    import llama_cpp
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "tiny-f32.gguf")
        write_tiny_llama(src, rng)
        for name, ftype in (("Q4_K", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M), ("Q6_K", llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K),
                            ("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0), ("Q5_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_0)):
            dst = os.path.join(tmp, f"tiny-{name}.gguf")
            p = llama_cpp.llama_model_quantize_default_params()
            p.ftype = ftype
            p.pure = True
            p.nthread = 1
            rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
            if rc != 0:
                raise SystemExit(f"llama_model_quantize {name} failed: {rc}")
            t = next(t for t in gguf.GGUFReader(dst).tensors if t.name == "blk.0.ffn_down.weight")
            if t.tensor_type != T[name]:
                raise SystemExit(f"ffn_down came out {t.tensor_type.name}, wanted {name}")
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)
            bs, ts = gguf.GGML_QUANT_SIZES[T[name]]
            row_bytes = N // bs * ts
            entries.append((name, f"llama.cpp {llama_cpp.__version__} llama_model_quantize", raw[: ROWS * row_bytes].copy()))
    return entries


def main():
    rng = np.random.default_rng(20260)
    entries = from_gguf_py(rng) + from_llama_cpp(rng)
    blobs, values, index = bytearray(), bytearray(), []
    for name, source, raw in entries:
        deq = gguf.quants.dequantize(raw, T[name]).astype(np.float32).reshape(-1)
        assert deq.size == ROWS * N, (name, deq.size)
        index.append({"name": name, "type": int(T[name]), "source": source, "rows": ROWS, "n": N,
                      "blocks_offset": len(blobs), "blocks_bytes": int(raw.size), "values_offset": len(values)})
        blobs += raw.tobytes()
        values += deq.astype("<f4").tobytes()
    with open(os.path.join(HERE, "quant_blocks.bin"), "wb") as f:
        f.write(bytes(blobs))
    with open(os.path.join(HERE, "quant_values.bin"), "wb") as f:
        f.write(bytes(values))
    meta = {"made_by": "make_quant_fixture.py", "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
            "numpy": np.__version__, "entries": index}
    with open(os.path.join(HERE, "quant_fixture.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"{len(index)} entries, {len(blobs)} block bytes, {len(values)} value bytes")


if __name__ == "__main__":
    sys.exit(main())
