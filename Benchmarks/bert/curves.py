#!/usr/bin/env python3
"""Dev-accuracy curves of swift-lm and PyTorch fine-tuning MiniLM on SST-2 (the same recipe) as an SVG.

usage: python3 Benchmarks/bert/curves.py LM_FINETUNE_JSON TORCH_BERT_JSON OUT.svg
LM_FINETUNE_JSON: the last line `lm finetune --task classify --json` printed (its "curve").
TORCH_BERT_JSON: the JSON line ../shared/bench/torch_bert.py printed (finetune.dev_acc_curve).
"""
import json
import sys


def last_json(path):
    lines = [l for l in open(path, encoding="utf-8") if l.strip().startswith("{")]
    return json.loads(lines[-1])


def find(obj, key):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                return v
            r = find(v, key)
            if r is not None:
                return r
    return None


def main():
    ours = last_json(sys.argv[1])
    torch = last_json(sys.argv[2])
    a = sorted((e["step"], 100 * e["accuracy"]) for e in find(ours, "curve"))
    b = sorted((int(s), 100 * v["dev_acc"]) for s, v in find(torch, "dev_acc_curve").items())
    W, H, L, R, T, B = 800, 360, 60, 270, 30, 40
    xmax = max(s for s, _ in a + b)
    ylo, yhi = 82.0, 92.0
    X = lambda s: L + (W - L - R) * s / xmax
    Y = lambda v: T + (H - T - B) * (yhi - v) / (yhi - ylo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18">SST-2 dev accuracy, MiniLM-L6-v2 fine-tuned one epoch (batch 32, AdamW 5e-5 linear)</text>']
    for v in range(int(ylo), int(yhi) + 1, 2):
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>'
                   f'<text x="{L - 8}" y="{Y(v) + 4:.1f}" text-anchor="end">{v} %</text>')
    for s in range(0, xmax + 1, 500):
        out.append(f'<text x="{X(s):.1f}" y="{H - B + 16}" text-anchor="middle">{s}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 6}" text-anchor="middle">step</text>')
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(91):.1f}" y2="{Y(91):.1f}" stroke="#999" stroke-dasharray="4 3"/>'
               f'<text x="{W - R + 6}" y="{Y(91) + 4:.1f}">91 % target</text>')
    for pts, colour, name, dy in [(a, "#d62728", "swift-lm", 0), (b, "#1f77b4", "PyTorch", 18)]:
        path = " ".join(f"{X(s):.1f},{Y(v):.1f}" for s, v in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out.append(f'<text x="{W - R + 6}" y="{T + 40 + dy}" fill="{colour}">{name} (best {max(v for _, v in pts):.2f} %, final {pts[-1][1]:.2f} %)</text>')
    out.append("</svg>")
    open(sys.argv[3], "w", encoding="utf-8").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
