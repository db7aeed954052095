#!/usr/bin/env python3
"""Time to first token in `lm chat`: the first turn against a turn after a long conversation.

`lm chat` keeps its KV cache between turns, so a turn runs only its own new tokens through the
model; the time to its first token should not grow with the conversation (only attention, which
reads every cached position, grows a little). This script drives the real binary in pipe mode
with --json (one object per reply, with `first_token_ms`, `prompt_tokens`, `context_used` and
`context_shifts`, all measured inside lm from the turn's arrival to its first sampled token).

Each run is one process fed: a warm-up turn, /reset (so that turn 1 meets an empty context with
warm caches and allocations), /save of that empty state, then --turns turns with the same text,
and /save of that state. Then --pairs times, alternately: /load the empty state and send the
text (a sample of turn 1), /load the long state and send it (a sample of the last turn). /load
restores a session exactly (cache, tokens, random state), so every sample of a kind is the same
computation and gives the same reply (checked); alternating cancels the drift of a shared
machine's load. Reported: the median of each kind, the median of the pairs' ratios, and the
ratio inside each plain conversation. As a contrast ("what re-reading the conversation would
cost"), the conversation before the last turn and the last turn's text are sent as one turn (a
\"\"\" block) to a fresh session: the prefill of a runtime without cache reuse.

Usage (from the package root, after `swift build -c release --product lm`):
    python3 Benchmarks/chat/ttft.py                                 # the bundled model
    python3 Benchmarks/chat/ttft.py --make-model runs/char-85m     # 12 layers, 768 dim, context 1024
    python3 Benchmarks/chat/ttft.py --model runs/char-85m --max-tokens 16 --text "hello there"
Prints a table on stderr and one JSON line on stdout.
"""
import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
log = functools.partial(print, file=sys.stderr, flush=True)


def make_model(lm, out):
    """A GPT-2-small-shaped character model (12 layers, 12 heads, 768 dim, context 1024, 85 M
    parameters) after one training step: its text is noise, its timings are those of the shape."""
    shared = os.environ.get("LM_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
    corpus = os.path.join(shared, "data", "tinyshakespeare", "input.txt")
    cmd = [lm, "train", "--corpus", corpus, "--tokenizer", "char", "--preset", "shakespeare-cpu",
           "--layers", "12", "--heads", "12", "--dim", "768", "--context", "1024", "--batch", "1",
           "--steps", "1", "--eval-batches", "1", "--out", out]
    log("making the benchmark model:", " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    for name in ["checkpoint.safetensors", "tokens.bin"]:  # 1 GB of optimizer state, not needed
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)


def chat(args, lines):
    """Runs `lm chat --json` on the given input lines; returns one dict per reply."""
    cmd = [args.lm, "chat", "--model", args.model, "--json", "--seed", str(args.seed)]
    if args.max_tokens:
        cmd += ["--max-tokens", str(args.max_tokens)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    r = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if r.returncode != 0 or "error" in r.stderr:
        sys.exit(f"lm chat failed ({r.returncode}): {r.stderr.strip()}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def one_run(args, tmp):
    """One process: the conversation, then --pairs alternating samples of turn 1 and of the
    last turn (each from its saved state), then the re-read contrast."""
    empty, long = os.path.join(tmp, "empty.json"), os.path.join(tmp, "long.json")
    lines = [args.text, "/reset", f"/save {empty}"] + [args.text] * (args.turns - 1) + [f"/save {long}"]
    lines += [args.text]
    for _ in range(args.pairs):
        lines += [f"/load {empty}", args.text, f"/load {long}", args.text]
    replies = chat(args, lines)[1:]  # without the warm-up turn
    conversation, samples = replies[:args.turns], replies[args.turns:]
    if len(conversation) != args.turns or len(samples) != 2 * args.pairs:
        sys.exit(f"expected {args.turns + 2 * args.pairs} replies, got {len(replies)}")
    firsts, lasts = samples[0::2], samples[1::2]
    if any(s["reply"] != conversation[0]["reply"] for s in firsts) or \
            any(s["reply"] != conversation[-1]["reply"] for s in lasts):
        sys.exit("a turn resumed from a saved state gave another reply than the conversation's turn")
    # The contrast: the conversation before the last turn, and the last turn's text, as one turn.
    transcript = []
    for r in conversation[:-1]:
        transcript += [args.text] + r["reply"].split("\n") + [""]
    transcript.append(args.text)
    block = ['"""'] + [line.replace('"""', "'''") for line in transcript] + ['"""']
    reread = chat(args, [args.text, "/reset"] + block)[1]
    return conversation, firsts, lasts, reread


def median(xs):
    return statistics.median(xs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lm", default=os.path.join(ROOT, ".build", "release", "lm"))
    p.add_argument("--model", default=os.path.join(ROOT, "models", "shakespeare"))
    p.add_argument("--make-model", metavar="DIR", help="write the 85 M-parameter benchmark model to DIR and exit")
    p.add_argument("--runs", type=int, default=3, help="processes")
    p.add_argument("--pairs", type=int, default=7, help="samples of turn 1 and of the last turn per process")
    p.add_argument("--turns", type=int, default=21, help="turns in the conversation (the last one is measured)")
    p.add_argument("--text", default="How fares my lord this morning?")
    p.add_argument("--max-tokens", type=int, default=0, help="reply length limit (default: lm chat's)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if not os.access(args.lm, os.X_OK):
        sys.exit(f"no lm binary at {args.lm} — run swift build -c release --product lm, or pass --lm")
    if args.make_model:
        make_model(args.lm, args.make_model)
        return

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(args, tmp) for _ in range(args.runs)]
    first = [f["first_token_ms"] for _, fs, _, _ in runs for f in fs]
    last = [l["first_token_ms"] for _, _, ls, _ in runs for l in ls]
    ratios = [b / a for a, b in zip(first, last)]
    conv0, _, _, rr0 = runs[0]
    result = {
        "model": os.path.relpath(args.model, ROOT) if args.model.startswith(ROOT) else args.model,
        "text": args.text, "turns": args.turns, "runs": args.runs, "pairs": args.pairs,
        "max_tokens": args.max_tokens or None, "threads": args.threads or None,
        "first_turn_ms": round(median(first), 2),
        "last_turn_ms": round(median(last), 2),
        "ratio_median": round(median(ratios), 3),
        "ratio_quartiles": [round(q, 3) for q in statistics.quantiles(ratios, n=4)],
        "conversation_ratio": [round(c[-1]["first_token_ms"] / c[0]["first_token_ms"], 3) for c, _, _, _ in runs],
        "first_turn_prompt_tokens": conv0[0]["prompt_tokens"],
        "last_turn_prompt_tokens": conv0[-1]["prompt_tokens"],
        "context_used_before_last_turn": conv0[-2]["context_used"],
        "context_shifts_in_last_turn": conv0[-1]["context_shifts"],
        "context_shifts_total": sum(r["context_shifts"] for r in conv0),
        "reread_ms": round(median([rr["first_token_ms"] for _, _, _, rr in runs]), 2),
        "reread_prompt_tokens": rr0["prompt_tokens"],
        "conversation_first_token_ms": [[round(r["first_token_ms"], 2) for r in c] for c, _, _, _ in runs],
        "loadavg": [list(load_before), list(os.getloadavg())],
    }
    n = len(ratios)
    log(f"model {result['model']}, {args.turns} turns of {args.text!r}; {n} pairs of samples from {args.runs} processes "
        f"(load average {load_before[0]:.2f} → {result['loadavg'][1][0]:.2f})")
    log(f"  turn 1:            {result['first_turn_ms']:8.2f} ms to the first token, median ({result['first_turn_prompt_tokens']} tokens prefilled)")
    log(f"  turn {args.turns}:           {result['last_turn_ms']:8.2f} ms ({result['last_turn_prompt_tokens']} tokens prefilled; "
        f"{result['context_used_before_last_turn']} positions cached before it; "
        f"{result['context_shifts_in_last_turn']} context shifts in it, {result['context_shifts_total']} in the conversation)")
    q = result["ratio_quartiles"]
    log(f"  ratio:             {result['ratio_median']:8.3f} median of the pairs (quartiles {q[0]}–{q[2]}); "
        f"in the conversations themselves: {result['conversation_ratio']}")
    log(f"  re-read contrast:  {result['reread_ms']:8.2f} ms ({result['reread_prompt_tokens']} tokens prefilled in one turn)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
